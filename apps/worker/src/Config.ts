/**
 * The worker's configuration: one JSON file (`--config FILE` or `TLSRPT_CONFIG`), each key overridable
 * by an environment variable (`config/Environment.ts`, an Effect `ConfigProvider`), validated with
 * Schema once at start-up (docs/architecture.md: configuration is read once, in apps/worker, and
 * handed down as values and Layers). Each section is decoded by the Schema of the package that takes
 * it, with that package's defaults and cross-key rules, so it is handed over whole: `reports` by the
 * reporter's `ReportsConfig` (its `ReporterConfig`), `collector` by the collector's `SocketConfig`
 * (the datagram source's options), `delivery` by the mail package's `DeliveryConfig` (the outbox's
 * `RetrySchedule`), `cluster` by the fleet's `ClusterConfig`, `dns` and `transport` by `DnsConfig`
 * and `TransportConfig`, `database` by the store's `Store.DatabaseConfig`. With no file at all, the
 * embedded default runs: data in `./data`, SQLite, `dir` transport into `./data/outbox`, the system's DNS, and no sending
 * until a submitter and a DKIM key are configured.
 *
 * Errors name the key (`dkim[0].privateKeyFile: …`); the bin exits with code 2 on them.
 */
import * as NodePath from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import { type Domain, HostPort } from "@tlsrpt/core"
import { DEFAULT_TIMEOUT_MS, DEFAULT_TRIES, DnsConfig } from "@tlsrpt/dns"
import { SocketConfig } from "@tlsrpt/collector"
import * as ClusterConfig from "@tlsrpt/fleet/ClusterConfig"
import {
  type DkimKey,
  DeliveryConfig,
  loadDkimKeys,
  makeSubmitter,
  type Submitter,
  TransportConfig
} from "@tlsrpt/mail"
import { ReportsConfig } from "@tlsrpt/reporter"
import { Store } from "@tlsrpt/store"
import { Effect, Either, ParseResult, Redacted, Schema } from "effect"
import { ConfigError } from "./config/ConfigError.js"
import * as Environment from "./config/Environment.js"
import { Address, DomainString, isSelector, NonEmpty, SELECTOR_EXPECTED } from "./config/Values.js"

export { ConfigError } from "./config/ConfigError.js"
export { DurationString, isSelector, SELECTOR_EXPECTED } from "./config/Values.js"

/** `host:port` (core's `HostPort.parse`). */
export const parseHostPort = HostPort.parse

// ---------------------------------------------------------------------------------------------------
// The file (also the shape the environment overrides are laid over)

const strict = { onExcessProperty: "error" } as const

export const DkimKeyFile = Schema.Struct({
  domain: DomainString,
  selector: Schema.String.pipe(Schema.filter((s) => isSelector(s) || SELECTOR_EXPECTED)),
  privateKeyFile: NonEmpty,
  algorithm: Schema.Literal("rsa-sha256", "ed25519-sha256")
})

export const ConfigFile = Schema.Struct({
  dataDir: Schema.optional(NonEmpty),
  database: Schema.optional(Store.DatabaseConfig),
  submitter: Schema.optional(
    Schema.Struct({
      domain: DomainString,
      organizationName: Schema.optional(NonEmpty),
      contactInfo: Schema.optional(NonEmpty),
      from: Schema.optional(Address)
    })
  ),
  dkim: Schema.optional(Schema.Array(DkimKeyFile)),
  reports: Schema.optional(ReportsConfig.schema),
  dns: Schema.optional(DnsConfig),
  transport: Schema.optional(TransportConfig),
  collector: Schema.optional(SocketConfig.schema),
  delivery: Schema.optional(DeliveryConfig.schema),
  http: Schema.optional(
    Schema.Struct({
      listen: Schema.optional(HostPort.schema()),
      token: Schema.optional(
        Schema.String.pipe(Schema.minLength(16, { message: () => "must be at least 16 characters" }))
      )
    })
  ),
  // docs/design.md#fleet-mode: absent = one process; present = this worker is a runner of the cluster.
  cluster: Schema.optional(ClusterConfig.schema)
})
export type ConfigFile = typeof ConfigFile.Type
export type ConfigFileJson = typeof ConfigFile.Encoded

// ---------------------------------------------------------------------------------------------------
// The resolved configuration handed to Layers

export interface DkimKeyConfig {
  readonly domain: Domain.Domain
  readonly selector: string
  /** Absolute path. */
  readonly privateKeyFile: string
  readonly algorithm: "rsa-sha256" | "ed25519-sha256"
}

export interface WorkerConfig {
  /** Absolute path of the file read, if any. */
  readonly configFile: string | undefined
  readonly dataDir: string
  /** SQLite file path (absolute), or the PostgreSQL URL without its password: for logs and pages. */
  readonly database: string
  /** Where the store is: `Layers.store` opens it. */
  readonly databaseConfig: Store.Database
  readonly submitter: Submitter | undefined
  readonly dkim: ReadonlyArray<DkimKeyConfig>
  /** The keys read and checked at start-up (`load`); empty before. */
  readonly dkimKeys: ReadonlyArray<DkimKey>
  /** The reporter's settings (handed to `ReporterLive.layer` whole), plus whether reporting and collection run at all. */
  readonly reports: ReportsConfig.Reports
  /** `Dns.layer`'s options (handed over whole); `servers` empty: the system's resolvers (/etc/resolv.conf). */
  readonly dns: Required<DnsConfig>
  /** `Transport.layerConfig`'s (handed over whole), with a `dir` made absolute. */
  readonly transport: TransportConfig
  /** Fleet mode (docs/design.md#fleet-mode); undefined: a single process. */
  readonly cluster?: ClusterConfig.ClusterConfig | undefined
  /** The libtlsrpt datagram socket (`collector.*`, `DatagramSource.layer`'s); `socket` undefined: not listening. */
  readonly collector: SocketConfig.Collector
  /** The outbox's retry schedule (`Delivery.layer`'s), and whether https reports may go to non-public addresses. */
  readonly delivery: DeliveryConfig.Delivery
  readonly http: {
    readonly listen: HostPort.HostPort
    readonly token: Redacted.Redacted<string> | undefined
  }
}

/** Shards of a cluster without `cluster.shards` (the fleet's default). */
export const DEFAULT_SHARDS = ClusterConfig.DEFAULT_SHARDS

export const DEFAULT_LISTEN: HostPort.HostPort = { host: "127.0.0.1", port: 8470 }

// ---------------------------------------------------------------------------------------------------
// The environment over the file

/** Names the file when `--config` is not given. */
export const ENV_CONFIG = "TLSRPT_CONFIG"

type Json = Record<string, unknown>

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** Lays the environment's overrides over the file's JSON; returns which key path came from which variable. */
export const applyEnv = (
  file: Json,
  environment: Readonly<Record<string, string | undefined>>
): Either.Either<{ readonly json: Json; readonly sources: ReadonlyMap<string, string> }, ConfigError> =>
  Either.flatMap(Environment.read(environment), (overrides) => {
    const json: Json = structuredClone(file)
    const sources = new Map<string, string>()
    for (const o of overrides) {
      let target: Json = json
      for (const segment of o.path.slice(0, -1)) {
        const next = target[segment]
        if (next === undefined) target[segment] = {}
        else if (!isObject(next))
          return Either.left(new ConfigError({ key: segment, reason: "expected an object", env: o.env }))
        target = target[segment] as Json
      }
      target[o.path[o.path.length - 1]!] = o.value
      sources.set(o.path.join("."), o.env)
    }
    return Either.right({ json, sources })
  })

// ---------------------------------------------------------------------------------------------------
// Decoding

/** `["dkim", 0, "privateKeyFile"]` → `dkim[0].privateKeyFile`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc === "" ? String(p) : `${acc}.${String(p)}`),
    ""
  )

/** The keys the file (or environment) set: an absent optional key leaves the default in place. */
const given = <T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>
  }

/** A database URL fit for a log line. */
const withoutPassword = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password !== "") u.password = "***"
    return u.toString()
  } catch {
    return "(unparsable URL)"
  }
}

const sourceOf = (sources: ReadonlyMap<string, string>, key: string): string | undefined => {
  // `dns.servers[1]` came from TLSRPT_DNS_SERVERS; `transport.url` from TLSRPT_TRANSPORT_URL.
  const plain = key.replace(/\[\d+\]/g, "")
  for (let k = plain; k !== ""; k = k.includes(".") ? k.slice(0, k.lastIndexOf(".")) : "") {
    const s = sources.get(k)
    if (s !== undefined) return s
  }
  return undefined
}

const decodeFile = Schema.decodeUnknownEither(ConfigFile, { errors: "first", ...strict })

/** Validates the merged JSON; the first problem becomes a ConfigError naming its key. */
export const decode = (json: unknown, sources: ReadonlyMap<string, string> = new Map()) =>
  Either.mapLeft(decodeFile(json), (error) => {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
    const issue = issues[0]
    if (issue === undefined) return new ConfigError({ key: "(root)", reason: "invalid configuration" })
    const key = formatPath(issue.path) || "(root)"
    const reason =
      issue._tag === "Unexpected"
        ? "unknown key"
        : issue._tag === "Missing"
          ? "is missing"
          : issue.message.replace(/\s+/g, " ").slice(0, 300)
    return new ConfigError({ key, reason, env: sourceOf(sources, key) })
  })

/** Defaults, cross-key checks and path resolution: relative paths in the file are relative to its directory. */
export const resolve = (
  file: ConfigFile,
  options: {
    readonly configFile: string | undefined
    readonly cwd: string
    readonly sources?: ReadonlyMap<string, string> | undefined
  }
): Either.Either<WorkerConfig, ConfigError> => {
  const sources = options.sources ?? new Map<string, string>()
  const base = options.configFile === undefined ? options.cwd : NodePath.dirname(options.configFile)
  // Values from the environment are relative to the working directory, as a shell user expects.
  const path = (key: string, p: string) =>
    NodePath.resolve(sourceOf(sources, key) === undefined ? base : options.cwd, p)
  const fail = (key: string, reason: string) =>
    Either.left(new ConfigError({ key, reason, env: sourceOf(sources, key) }))

  const dataDir = path("dataDir", file.dataDir ?? "data")
  const databaseFile = file.database ?? NodePath.join(dataDir, "tlsrpt.db")
  let databaseConfig: Store.Database
  if (typeof databaseFile === "string" || databaseFile.type === "sqlite") {
    const database = typeof databaseFile === "string" ? databaseFile : databaseFile.file
    const key = typeof databaseFile === "string" ? "database" : "database.file"
    if (/^postgres(ql)?:/i.test(database))
      return fail(key, 'a PostgreSQL URL goes in { "type": "postgres", "url": … } (or TLSRPT_DATABASE_URL)')
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(database)) return fail(key, "expected a SQLite file path")
    databaseConfig = { type: "sqlite", file: path(key, database) }
  } else {
    databaseConfig = { type: "postgres", url: Redacted.make(databaseFile.url) }
  }

  let submitter: Submitter | undefined
  if (file.submitter !== undefined) {
    const s = file.submitter
    // The mail package owns the rules (defaults postmaster@<domain>, the contact domain: docs/design.md#submitter-identity).
    const made = makeSubmitter({
      domain: s.domain.ascii,
      organizationName: s.organizationName,
      contactInfo: s.contactInfo,
      from: s.from
    })
    if (Either.isLeft(made)) return fail(`submitter.${made.left.field}`, made.left.reason)
    submitter = made.right
  }

  const dkim = (file.dkim ?? []).map((k, i) => ({
    domain: k.domain,
    selector: k.selector,
    privateKeyFile: path(`dkim[${i}].privateKeyFile`, k.privateKeyFile),
    algorithm: k.algorithm
  }))

  // Each section's defaults and cross-key rules are its package's; an error names the key in the file.
  const reports = ReportsConfig.resolve(file.reports)
  if (Either.isLeft(reports)) return fail(`reports.${reports.left.key}`, reports.left.reason)
  const delivery = DeliveryConfig.resolve(file.delivery)
  if (Either.isLeft(delivery)) return fail(`delivery.${delivery.left.key}`, delivery.left.reason)

  const transport: TransportConfig =
    file.transport === undefined
      ? { type: "dir", dir: NodePath.join(dataDir, "outbox") }
      : file.transport.type === "dir"
        ? { type: "dir", dir: path("transport.dir", file.transport.dir) }
        : file.transport

  return Either.right({
    configFile: options.configFile,
    dataDir,
    database:
      databaseConfig.type === "sqlite" ? databaseConfig.file : withoutPassword(Redacted.value(databaseConfig.url)),
    databaseConfig,
    submitter,
    dkim,
    dkimKeys: [],
    reports: reports.right,
    // The defaults are the dns package's own; the file overrides them key by key.
    dns: { servers: [], timeoutMs: DEFAULT_TIMEOUT_MS, tries: DEFAULT_TRIES, ...given(file.dns ?? {}) },
    transport,
    collector: SocketConfig.resolve(file.collector, {
      dataDir,
      path: (key, p) => path(`collector.${key}`, p)
    }),
    delivery: delivery.right,
    cluster: file.cluster === undefined ? undefined : ClusterConfig.resolve(file.cluster),
    http: {
      listen: file.http?.listen ?? DEFAULT_LISTEN,
      token: file.http?.token === undefined ? undefined : Redacted.make(file.http.token)
    }
  })
}

/**
 * Reads and validates the configuration: the file named by `--config` or `TLSRPT_CONFIG` (none: the
 * embedded default), the environment overrides, then checks that every DKIM key file is readable.
 */
export const load = (options: {
  readonly configFile: string | undefined
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
}) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const named = options.configFile ?? nonEmpty(options.env[ENV_CONFIG])
    const configFile = named === undefined ? undefined : NodePath.resolve(options.cwd, named)
    const key = options.configFile === undefined && named !== undefined ? ENV_CONFIG : "--config"
    let json: Json = {}
    if (configFile !== undefined) {
      const text = yield* Effect.mapError(fs.readFileString(configFile), (e) => {
        const why = e._tag === "SystemError" && e.reason === "NotFound" ? "no such file" : e.message
        return new ConfigError({ key, reason: `cannot read ${configFile}: ${why}` })
      })
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch (e) {
        return yield* new ConfigError({ key, reason: `${configFile} is not JSON: ${(e as Error).message}` })
      }
      if (!isObject(parsed)) return yield* new ConfigError({ key, reason: `${configFile} must hold a JSON object` })
      json = parsed
    }
    const merged = yield* applyEnv(json, options.env)
    const file = yield* decode(merged.json, merged.sources)
    const config = yield* resolve(file, { configFile, cwd: options.cwd, sources: merged.sources })
    const dkimKeys = yield* Effect.forEach(config.dkim, (k, i) =>
      loadDkimKeys([{ ...k, domain: k.domain.ascii }]).pipe(
        Effect.map((keys) => keys[0]!),
        Effect.mapError(
          (e) =>
            new ConfigError({
              key: `dkim[${i}].privateKeyFile`,
              reason: `${k.privateKeyFile}: ${e.reason}`,
              env: sourceOf(merged.sources, "dkim")
            })
        )
      )
    )
    return { ...config, dkimKeys }
  })

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s === "" ? undefined : s)

/** Why reports cannot be sent with this configuration, or undefined when they can (the one log line). */
export const sendingBlocker = (config: WorkerConfig): { readonly key: string; readonly reason: string } | undefined => {
  if (!config.reports.enabled)
    return { key: "reports.enabled", reason: "reports are disabled (reports.enabled = false)" }
  if (config.submitter === undefined)
    return { key: "submitter", reason: "no submitter configured (submitter.domain); run `tlsrpt init --domain D`" }
  const domain = config.submitter.domain.ascii
  if (!config.dkim.some((k) => k.domain.ascii === domain))
    return { key: "dkim", reason: `no DKIM key for the submitter domain ${domain} configured (dkim)` }
  return undefined
}
