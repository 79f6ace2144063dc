/**
 * The worker's configuration: one JSON file (`--config FILE` or `TLSRPT_CONFIG`), each key overridable
 * by an environment variable, validated with Schema once at start-up (ARCHITECTURE.md: configuration
 * is read once, in apps/worker, and handed down as Layers). With no file at all, the embedded default
 * runs: data in `./data`, SQLite, `dir` transport into `./data/outbox`, the system's DNS, and no
 * sending until a submitter and a DKIM key are configured.
 *
 * Errors name the key (`dkim[0].privateKeyFile: …`); the bin exits with code 2 on them.
 */
import { isIP } from "node:net"
import * as NodePath from "node:path"
import { FileSystem } from "@effect/platform"
import { Domain, EmailAddress } from "@tlsrpt/core"
import {
  type DkimKey,
  defaultRetrySchedule,
  loadDkimKeys,
  makeSubmitter,
  type RetrySchedule,
  type Submitter
} from "@tlsrpt/mail"
import type { ReporterConfig } from "@tlsrpt/reporter"
import { Data, Duration, Effect, Either, Option, ParseResult, Redacted, Schema } from "effect"

export class ConfigError extends Data.TaggedError("ConfigError")<{
  /** The config key, e.g. `transport.url` or `dkim[0].privateKeyFile`; `--config` for the file itself. */
  readonly key: string
  readonly reason: string
  /** The environment variable the value came from, if any. */
  readonly env?: string | undefined
}> {
  override get message(): string {
    return `config: ${this.key}${this.env === undefined ? "" : ` (from ${this.env})`}: ${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------------------
// Value schemas (decode from the JSON file's strings; encode is only used by `init`)

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `"4h"`, `"5m"`, `"240s"`, `"1500ms"`, `"1d"`, or effect's `"4 hours"`. */
export const DurationString = Schema.transformOrFail(Schema.String, Schema.DurationFromSelf, {
  strict: true,
  decode: (s, _, ast) => {
    const m = DURATION.exec(s.trim())
    if (m !== null) return ParseResult.succeed(Duration.millis(Number(m[1]) * UNIT_MS[m[2]!]!))
    const d = Duration.decodeUnknown(s)
    return Option.isSome(d) && Duration.toMillis(d.value) >= 0
      ? ParseResult.succeed(d.value)
      : ParseResult.fail(
          new ParseResult.Type(ast, s, `expected a duration like "4h", "5m", "240s", got ${JSON.stringify(s)}`)
        )
  },
  encode: (d) => ParseResult.succeed(`${Duration.toMillis(d)}ms`)
})

/**
 * A duration within `[min, max]`. The round's window must end before the next day's round starts, and a
 * timer beyond 2^31 ms fires at once or never (Node's setTimeout), so the ranges are the schedule's:
 * window up to 23 h, gap and jitter up to 1 h.
 */
const boundedDuration = (min: Duration.Duration, max: Duration.Duration) =>
  DurationString.pipe(
    Schema.filter(
      (d) =>
        (Duration.greaterThanOrEqualTo(d, min) && Duration.lessThanOrEqualTo(d, max)) ||
        `expected a duration between ${Duration.format(min)} and ${Duration.format(max)}, got ${Duration.format(d)}`
    )
  )

export interface HostPort {
  readonly host: string
  readonly port: number
}

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/

/** `host:port` or `[v6]:port`; `defaultPort` allows a bare host. */
export const parseHostPort = (s: string, defaultPort?: number): Either.Either<HostPort, string> => {
  const m = HOST_PORT.exec(s)
  if (m !== null) {
    const port = Number(m[3])
    if (port > 65535) return Either.left(`port out of range in ${JSON.stringify(s)}`)
    return Either.right({ host: m[1] ?? m[2]!, port })
  }
  if (defaultPort !== undefined && /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+|[0-9a-fA-F:]+)$/.test(s) && s.length > 0) {
    return Either.right({ host: s.replace(/^\[|\]$/g, ""), port: defaultPort })
  }
  return Either.left(`expected "host:port", got ${JSON.stringify(s)}`)
}

const hostPort = (defaultPort?: number) =>
  Schema.transformOrFail(
    Schema.String,
    Schema.Struct({ host: Schema.String, port: Schema.Number }) as Schema.Schema<HostPort>,
    {
      strict: true,
      decode: (s, _, ast) => Either.mapLeft(parseHostPort(s, defaultPort), (r) => new ParseResult.Type(ast, s, r)),
      encode: (hp) => ParseResult.succeed(hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`)
    }
  )

const NonEmpty = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))

const DomainString = Domain.FromString

const Address = Schema.String.pipe(
  Schema.filter((s) => Either.isRight(EmailAddress.parse(s)) || `expected a mail address, got ${JSON.stringify(s)}`)
)

/** `smtp://host:port` (or `smtps://`, optionally with `user:pass@`); the port defaults to 25 / 465. */
const SmtpUrl = Schema.String.pipe(
  Schema.filter((s) => {
    let url: URL
    try {
      url = new URL(s)
    } catch {
      return `expected an URL like "smtp://host:port", got ${JSON.stringify(s)}`
    }
    if (url.protocol !== "smtp:" && url.protocol !== "smtps:")
      return `expected an smtp:// or smtps:// URL, got ${url.protocol}`
    if (url.hostname === "") return "the URL has no host"
    if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "")
      return "the URL must be only smtp://[user:pass@]host[:port]"
    return true
  })
)

// ---------------------------------------------------------------------------------------------------
// The file (also the shape the environment overrides are merged into)

const strict = { onExcessProperty: "error" } as const

const SELECTOR_LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/

/**
 * A DKIM selector (RFC 6376 §3.1): dot-separated DNS labels of letters, digits, `-` and `_`, each 1–63
 * characters, not starting or ending with `-`. It becomes a DNS name and part of the key's file name
 * (`init`), so nothing else (no `/`, no `..`) passes.
 */
export const isSelector = (s: string): boolean => s.length <= 200 && s.split(".").every((l) => SELECTOR_LABEL.test(l))
export const SELECTOR_EXPECTED = "expected a DKIM selector: DNS labels of letters, digits, - and _, separated by dots"

export const DkimKeyFile = Schema.Struct({
  domain: DomainString,
  selector: Schema.String.pipe(Schema.filter((s) => isSelector(s) || SELECTOR_EXPECTED)),
  privateKeyFile: NonEmpty,
  algorithm: Schema.Literal("rsa-sha256", "ed25519-sha256")
})

export const TransportFile = Schema.Union(
  Schema.Struct({ type: Schema.Literal("smtp"), url: SmtpUrl }),
  Schema.Struct({ type: Schema.Literal("dir"), dir: NonEmpty })
)

export const ConfigFile = Schema.Struct({
  dataDir: Schema.optional(NonEmpty),
  database: Schema.optional(NonEmpty),
  submitter: Schema.optional(
    Schema.Struct({
      domain: DomainString,
      organizationName: Schema.optional(NonEmpty),
      contactInfo: Schema.optional(NonEmpty),
      from: Schema.optional(Address)
    })
  ),
  dkim: Schema.optional(Schema.Array(DkimKeyFile)),
  reports: Schema.optional(
    Schema.Struct({
      enabled: Schema.optional(Schema.Boolean),
      collect: Schema.optional(Schema.Boolean),
      forAllSuccess: Schema.optional(Schema.Boolean),
      https: Schema.optional(Schema.Boolean),
      window: Schema.optional(boundedDuration(Duration.zero, Duration.hours(23))),
      maxGap: Schema.optional(boundedDuration(Duration.zero, Duration.hours(1))),
      jitterMin: Schema.optional(boundedDuration(Duration.zero, Duration.hours(1))),
      jitterMax: Schema.optional(boundedDuration(Duration.zero, Duration.hours(1)))
    })
  ),
  dns: Schema.optional(
    Schema.Struct({
      // node:dns setServers takes IP addresses only; a host name would fail at the first lookup.
      servers: Schema.optional(
        Schema.Array(
          hostPort(53).pipe(
            Schema.filter(
              (hp) =>
                isIP(hp.host) !== 0 ||
                `expected an IP address (a resolver's name cannot be resolved), got ${JSON.stringify(hp.host)}`
            )
          )
        )
      ),
      timeoutMs: Schema.optional(Schema.Int.pipe(Schema.between(1, 60_000))),
      tries: Schema.optional(Schema.Int.pipe(Schema.between(1, 10)))
    })
  ),
  transport: Schema.optional(TransportFile),
  collector: Schema.optional(
    Schema.Struct({
      /** The libtlsrpt datagram socket (Postfix `smtp_tlsrpt_socket_name`); `null` turns it off. */
      socket: Schema.optional(Schema.NullOr(NonEmpty)),
      socketMode: Schema.optional(
        Schema.String.pipe(
          Schema.pattern(/^0?[0-7]{3}$/, { message: () => 'expected an octal file mode such as "0660"' })
        )
      ),
      socketGroup: Schema.optional(Schema.Union(NonEmpty, Schema.Int.pipe(Schema.nonNegative()))),
      invalidDatagramDir: Schema.optional(Schema.NullOr(NonEmpty))
    })
  ),
  delivery: Schema.optional(
    Schema.Struct({
      attempts: Schema.optional(Schema.Int.pipe(Schema.between(1, 100))),
      backoff: Schema.optional(DurationString),
      maxBackoff: Schema.optional(DurationString),
      httpsAllowPrivate: Schema.optional(Schema.Boolean)
    })
  ),
  // docs/design.md#fleet-mode: absent = one process; present = this worker is a runner of the cluster.
  cluster: Schema.optional(
    Schema.Struct({
      runnerAddress: hostPort(),
      shards: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000)))
    })
  ),
  http: Schema.optional(
    Schema.Struct({
      listen: Schema.optional(hostPort()),
      token: Schema.optional(
        Schema.String.pipe(Schema.minLength(16, { message: () => "must be at least 16 characters" }))
      )
    })
  )
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

export type TransportConfig =
  | { readonly type: "smtp"; readonly url: string }
  | { readonly type: "dir"; readonly dir: string }

export interface WorkerConfig {
  /** Absolute path of the file read, if any. */
  readonly configFile: string | undefined
  readonly dataDir: string
  /** SQLite file path (absolute). */
  readonly database: string
  readonly submitter: Submitter | undefined
  readonly dkim: ReadonlyArray<DkimKeyConfig>
  /** The keys read and checked at start-up (`load`); empty before. */
  readonly dkimKeys: ReadonlyArray<DkimKey>
  /** The reporter's own settings, plus whether reporting and collection run at all. */
  readonly reports: Omit<ReporterConfig, "temporaryRetries"> & {
    readonly enabled: boolean
    readonly collect: boolean
  }
  readonly dns: {
    /** Empty: the system's resolvers (/etc/resolv.conf). */
    readonly servers: ReadonlyArray<HostPort>
    readonly timeoutMs: number
    readonly tries: number
  }
  readonly transport: TransportConfig
  /** The libtlsrpt datagram socket (`collector.*`); `socket` undefined: not listening. */
  readonly collector: {
    readonly socket: string | undefined
    readonly socketMode: number
    readonly socketGroup: string | number | undefined
    readonly invalidDatagramDir: string | undefined
  }
  /** The outbox's retry schedule, and whether https reports may go to non-public addresses. */
  readonly delivery: RetrySchedule & { readonly httpsAllowPrivate: boolean }
  /** Fleet mode (docs/design.md#fleet-mode); undefined: a single process. */
  readonly cluster?: { readonly runnerAddress: HostPort; readonly shards: number } | undefined
  readonly http: {
    readonly listen: HostPort
    readonly token: Redacted.Redacted<string> | undefined
  }
}

/** Shards of a cluster without `cluster.shards` (@effect/cluster's default). */
export const DEFAULT_SHARDS = 300

export const DEFAULT_LISTEN: HostPort = { host: "127.0.0.1", port: 8470 }

// ---------------------------------------------------------------------------------------------------
// Environment overrides: TLSRPT_<KEY PATH IN SCREAMING SNAKE CASE>

type EnvKind = "string" | "boolean" | "integer" | "list" | "json" | "nullable"

interface EnvOverride {
  readonly env: string
  readonly path: ReadonlyArray<string>
  readonly kind: EnvKind
}

const env = (name: string, path: string, kind: EnvKind = "string"): EnvOverride => ({
  env: name,
  path: path.split("."),
  kind
})

/** Every environment variable the worker reads, with the key it overrides (documented in the README). */
export const ENV_OVERRIDES: ReadonlyArray<EnvOverride> = [
  env("TLSRPT_DATA_DIR", "dataDir"),
  env("TLSRPT_DATABASE", "database"),
  env("TLSRPT_SUBMITTER_DOMAIN", "submitter.domain"),
  env("TLSRPT_SUBMITTER_ORGANIZATION_NAME", "submitter.organizationName"),
  env("TLSRPT_SUBMITTER_CONTACT_INFO", "submitter.contactInfo"),
  env("TLSRPT_SUBMITTER_FROM", "submitter.from"),
  env("TLSRPT_DKIM", "dkim", "json"),
  env("TLSRPT_REPORTS_ENABLED", "reports.enabled", "boolean"),
  env("TLSRPT_REPORTS_COLLECT", "reports.collect", "boolean"),
  env("TLSRPT_REPORTS_FOR_ALL_SUCCESS", "reports.forAllSuccess", "boolean"),
  env("TLSRPT_REPORTS_HTTPS", "reports.https", "boolean"),
  env("TLSRPT_REPORTS_WINDOW", "reports.window"),
  env("TLSRPT_REPORTS_MAX_GAP", "reports.maxGap"),
  env("TLSRPT_REPORTS_JITTER_MIN", "reports.jitterMin"),
  env("TLSRPT_REPORTS_JITTER_MAX", "reports.jitterMax"),
  env("TLSRPT_DNS_SERVERS", "dns.servers", "list"),
  env("TLSRPT_DNS_TIMEOUT_MS", "dns.timeoutMs", "integer"),
  env("TLSRPT_DNS_TRIES", "dns.tries", "integer"),
  env("TLSRPT_COLLECTOR_SOCKET", "collector.socket", "nullable"),
  env("TLSRPT_DELIVERY_ATTEMPTS", "delivery.attempts", "integer"),
  env("TLSRPT_DELIVERY_BACKOFF", "delivery.backoff"),
  env("TLSRPT_DELIVERY_MAX_BACKOFF", "delivery.maxBackoff"),
  env("TLSRPT_DELIVERY_HTTPS_ALLOW_PRIVATE", "delivery.httpsAllowPrivate", "boolean"),
  env("TLSRPT_CLUSTER_RUNNER_ADDRESS", "cluster.runnerAddress"),
  env("TLSRPT_HTTP_LISTEN", "http.listen"),
  env("TLSRPT_HTTP_TOKEN", "http.token")
]
/** These two replace the whole `transport` object. */
export const ENV_TRANSPORT_URL = "TLSRPT_TRANSPORT_URL"
export const ENV_TRANSPORT_DIR = "TLSRPT_TRANSPORT_DIR"
export const ENV_CONFIG = "TLSRPT_CONFIG"

const parseEnvValue = (kind: EnvKind, raw: string): unknown => {
  switch (kind) {
    case "string":
      return raw
    // An empty value (or "null") turns the setting off, as `null` does in the file.
    case "nullable":
      return raw.trim() === "" || raw.trim() === "null" ? null : raw
    case "boolean": {
      const v = raw.trim().toLowerCase()
      if (["1", "true", "yes", "on"].includes(v)) return true
      if (["0", "false", "no", "off"].includes(v)) return false
      return raw
    }
    case "integer":
      return /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw
    case "list":
      return raw.trim() === ""
        ? []
        : raw
            .split(/[\s,]+/)
            .map((s) => s.trim())
            .filter((s) => s !== "")
    case "json":
      try {
        return JSON.parse(raw)
      } catch {
        return raw
      }
  }
}

type Json = Record<string, unknown>

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** Merges the environment into the file's JSON; returns which key path came from which variable. */
export const applyEnv = (
  file: Json,
  environment: Readonly<Record<string, string | undefined>>
): Either.Either<{ readonly json: Json; readonly sources: ReadonlyMap<string, string> }, ConfigError> => {
  const json: Json = structuredClone(file)
  const sources = new Map<string, string>()
  for (const o of ENV_OVERRIDES) {
    const raw = environment[o.env]
    if (raw === undefined) continue
    let target: Json = json
    for (const segment of o.path.slice(0, -1)) {
      const next = target[segment]
      if (next === undefined) target[segment] = {}
      else if (!isObject(next))
        return Either.left(new ConfigError({ key: segment, reason: "expected an object", env: o.env }))
      target = target[segment] as Json
    }
    target[o.path[o.path.length - 1]!] = parseEnvValue(o.kind, raw)
    sources.set(o.path.join("."), o.env)
  }
  const url = environment[ENV_TRANSPORT_URL]
  const dir = environment[ENV_TRANSPORT_DIR]
  if (url !== undefined && dir !== undefined)
    return Either.left(
      new ConfigError({ key: "transport", reason: `set only one of ${ENV_TRANSPORT_URL} and ${ENV_TRANSPORT_DIR}` })
    )
  if (url !== undefined) {
    json.transport = { type: "smtp", url }
    sources.set("transport", ENV_TRANSPORT_URL)
  } else if (dir !== undefined) {
    json.transport = { type: "dir", dir }
    sources.set("transport", ENV_TRANSPORT_DIR)
  }
  return Either.right({ json, sources })
}

// ---------------------------------------------------------------------------------------------------
// Decoding

/** `["dkim", 0, "privateKeyFile"]` → `dkim[0].privateKeyFile`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc === "" ? String(p) : `${acc}.${String(p)}`),
    ""
  )

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
  const database = file.database ?? NodePath.join(dataDir, "tlsrpt.db")
  if (/^postgres(ql)?:/i.test(database))
    return fail("database", "PostgreSQL is not supported yet; give a SQLite file path")
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(database)) return fail("database", "expected a SQLite file path")

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

  const r = file.reports ?? {}
  const reports = {
    enabled: r.enabled ?? true,
    collect: r.collect ?? true,
    forAllSuccess: r.forAllSuccess ?? false,
    https: r.https ?? true,
    // docs/design.md#pacing: spread over 4 h, at most 5 min apart; wake 240–360 s after 00:00 UTC.
    window: r.window ?? Duration.hours(4),
    maxGap: r.maxGap ?? Duration.minutes(5),
    jitterMin: r.jitterMin ?? Duration.seconds(240),
    jitterMax: r.jitterMax ?? Duration.seconds(360)
  }
  if (Duration.greaterThan(reports.jitterMin, reports.jitterMax))
    return fail("reports.jitterMin", "must not be greater than reports.jitterMax")

  const d = file.delivery ?? {}
  const delivery = {
    attempts: d.attempts ?? defaultRetrySchedule.attempts,
    backoff: d.backoff ?? Duration.decode(defaultRetrySchedule.backoff),
    maxBackoff: d.maxBackoff ?? Duration.decode(defaultRetrySchedule.maxBackoff),
    httpsAllowPrivate: d.httpsAllowPrivate ?? false
  }
  if (Duration.toMillis(delivery.backoff) < 1000) return fail("delivery.backoff", "must be at least 1s")
  if (Duration.lessThan(delivery.maxBackoff, delivery.backoff))
    return fail("delivery.maxBackoff", "must not be less than delivery.backoff")

  const transport: TransportConfig =
    file.transport === undefined
      ? { type: "dir", dir: NodePath.join(dataDir, "outbox") }
      : file.transport.type === "dir"
        ? { type: "dir", dir: path("transport.dir", file.transport.dir) }
        : file.transport

  return Either.right({
    configFile: options.configFile,
    dataDir,
    database: path("database", database),
    submitter,
    dkim,
    dkimKeys: [],
    reports,
    dns: {
      servers: file.dns?.servers ?? [],
      timeoutMs: file.dns?.timeoutMs ?? 5000,
      tries: file.dns?.tries ?? 3
    },
    transport,
    collector: {
      socket:
        file.collector?.socket === null
          ? undefined
          : file.collector?.socket === undefined
            ? NodePath.join(dataDir, "tlsrpt.sock")
            : path("collector.socket", file.collector.socket),
      socketMode: Number.parseInt(file.collector?.socketMode ?? "0660", 8),
      socketGroup: file.collector?.socketGroup,
      invalidDatagramDir:
        file.collector?.invalidDatagramDir === null
          ? undefined
          : file.collector?.invalidDatagramDir === undefined
            ? NodePath.join(dataDir, "invalid-datagrams")
            : path("collector.invalidDatagramDir", file.collector.invalidDatagramDir)
    },
    delivery,
    cluster:
      file.cluster === undefined
        ? undefined
        : { runnerAddress: file.cluster.runnerAddress, shards: file.cluster.shards ?? DEFAULT_SHARDS },
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
