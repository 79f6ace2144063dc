/**
 * The environment as a `ConfigProvider`: every key of the file can be overridden by the variable
 * `TLSRPT_` + its path in SCREAMING_SNAKE_CASE (`reports.forAllSuccess` → `TLSRPT_REPORTS_FOR_ALL_SUCCESS`),
 * the names documented in the README. Each override is an Effect `Config` read at the key's path, so
 * no variable name is written by hand; the values it yields are laid over the file's JSON and then
 * decoded by the file's Schema, so a value is checked by one rule whichever source it came from.
 *
 * Why the file is not a second provider (`ConfigProvider.fromJson`, `orElse`): `fromJson` turns every
 * value into a string and drops `null`, so `"tries": "3"` would pass for `3` and `"socket": null`
 * (off) would read as absent (on); and a `Config` reads only the keys it asks for, so an unknown key
 * (`http.tokn`) could not be refused. The file is a wire format and is decoded by its Schema.
 */
import { Config, ConfigProvider, Effect, Either, Option } from "effect"
import { ConfigError } from "./ConfigError.js"

/** A path segment as in the variable's name: `forAllSuccess` → `FOR_ALL_SUCCESS`. */
const screaming = (segment: string): string => segment.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()

/** The variable that overrides a key path: `["dns", "timeoutMs"]` → `TLSRPT_DNS_TIMEOUT_MS`. */
export const envName = (path: ReadonlyArray<string>): string => ["TLSRPT", ...path].map(screaming).join("_")

/** The environment as a ConfigProvider over key paths (`dns.timeoutMs` reads `TLSRPT_DNS_TIMEOUT_MS`). */
export const provider = (environment: Readonly<Record<string, string | undefined>>): ConfigProvider.ConfigProvider =>
  ConfigProvider.fromMap(
    new Map(Object.entries(environment).filter((e): e is [string, string] => e[1] !== undefined)),
    // A value is one string: lists (`TLSRPT_DNS_SERVERS`) are split below, not by the provider.
    { pathDelim: "_", seqDelim: "\u0000" }
  ).pipe(ConfigProvider.mapInputPath(screaming), ConfigProvider.nested("TLSRPT"))

/** One variable's value, for the key path it overrides. */
export interface Override {
  readonly path: ReadonlyArray<string>
  readonly value: unknown
  readonly env: string
}

// How a variable's text becomes the file's JSON value. A text that does not fit is passed on as it
// is, so the Schema reports it as it would in the file (`Expected number, actual "abc"`).
const asIs = (raw: string): unknown => raw
/** An empty value (or "null") turns the setting off, as `null` does in the file. */
const nullable = (raw: string): unknown => (raw.trim() === "" || raw.trim() === "null" ? null : raw)
const boolean = (raw: string): unknown => {
  const v = raw.trim().toLowerCase()
  if (["1", "true", "yes", "on"].includes(v)) return true
  if (["0", "false", "no", "off"].includes(v)) return false
  return raw
}
const integer = (raw: string): unknown => (/^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw)
/** Comma- or space-separated. */
const list = (raw: string): unknown => raw.split(/[\s,]+/).filter((s) => s !== "")
const json = (raw: string): unknown => {
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

/** The override of one key, read through the provider at the key's path. */
const key = (path: string, parse: (raw: string) => unknown = asIs): Config.Config<Option.Option<Override>> => {
  const segments = path.split(".")
  const read = segments
    .slice(0, -1)
    .reduceRight((config, segment) => Config.nested(config, segment), Config.string(segments[segments.length - 1]!))
  return Config.option(read).pipe(
    Config.map(Option.map((raw) => ({ path: segments, value: parse(raw), env: envName(segments) })))
  )
}

/** Every key the environment overrides one by one (`collector.socketMode` and its kin: file only). */
const keys = Config.all([
  key("dataDir"),
  key("database"),
  key("submitter.domain"),
  key("submitter.organizationName"),
  key("submitter.contactInfo"),
  key("submitter.from"),
  key("dkim", json),
  key("reports.enabled", boolean),
  key("reports.collect", boolean),
  key("reports.forAllSuccess", boolean),
  key("reports.https", boolean),
  key("reports.window"),
  key("reports.maxGap"),
  key("reports.jitterMin"),
  key("reports.jitterMax"),
  key("dns.servers", list),
  key("dns.timeoutMs", integer),
  key("dns.tries", integer),
  key("collector.socket", nullable),
  key("delivery.attempts", integer),
  key("delivery.backoff"),
  key("delivery.maxBackoff"),
  key("delivery.httpsAllowPrivate", boolean),
  key("http.listen"),
  key("http.token"),
  key("cluster.runnerAddress")
])

/**
 * Variables that replace a whole object: `TLSRPT_TRANSPORT_URL` / `TLSRPT_TRANSPORT_DIR` the
 * `transport`, `TLSRPT_DATABASE_URL` the `database` (as `{ "type": "postgres", "url" }`).
 */
const replacements = Config.all({
  transportUrl: key("transport.url"),
  transportDir: key("transport.dir"),
  databaseUrl: key("database.url")
})

const both = (a: Option.Option<Override>, b: Option.Option<Override>, key: string) =>
  Option.isSome(a) && Option.isSome(b)
    ? Either.left(new ConfigError({ key, reason: `set only one of ${a.value.env} and ${b.value.env}` }))
    : Either.right(undefined)

const replace = (o: Option.Option<Override>, path: string, value: (raw: unknown) => unknown) =>
  Option.map(o, (v) => ({ path: [path], value: value(v.value), env: v.env }))

/** The overrides the environment sets, in the order they apply; two that exclude each other fail. */
export const read = (
  environment: Readonly<Record<string, string | undefined>>
): Either.Either<ReadonlyArray<Override>, ConfigError> => {
  // fromMap is synchronous and every read is optional: this cannot fail or suspend.
  const loaded = Effect.runSync(provider(environment).load(Config.all([keys, replacements])))
  const [overrides, r] = loaded
  const database = overrides[1]!
  return Either.all([
    both(database, r.databaseUrl, "database"),
    both(r.transportUrl, r.transportDir, "transport")
  ]).pipe(
    Either.map(() =>
      [
        ...overrides,
        replace(r.databaseUrl, "database", (url) => ({ type: "postgres", url })),
        replace(r.transportUrl, "transport", (url) => ({ type: "smtp", url })),
        replace(r.transportDir, "transport", (dir) => ({ type: "dir", dir }))
      ].flatMap((o) => (Option.isSome(o) ? [o.value] : []))
    )
  )
}
