/**
 * The DNS port: TXT lookups. The live layer runs on `node:dns` (c-ares); the test layers answer
 * from memory. Only the distinction the callers need is kept: "no records" (NXDOMAIN / NODATA,
 * a fact) versus "temporary" (anything else: retry later, docs/design.md#temporary-dns-errors-keep-results).
 */
import { Resolver } from "node:dns"
import { isIP } from "node:net"
import { HostPort } from "@tlsrpt/core"
import { Context, Data, Duration, Effect, Layer, Ref, Schema } from "effect"

/** One TXT record, its character-strings concatenated without spaces (RFC 8460 §3). */
export interface TxtAnswer {
  /** The record's octets decoded as UTF-8 (RFC 8460 §3 allows UTF-8 in the record). */
  readonly text: string
  /** Seconds the answer may be cached. */
  readonly ttl: number
  /**
   * Set when the octets are not valid UTF-8: the UTF-16 offset in `text` (where invalid sequences
   * are U+FFFD) of the first invalid one. The caller decides (a TLSRPT record: syntax error).
   */
  readonly invalidUtf8At?: number | undefined
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const lossyUtf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })

/**
 * One record from `resolveTxt`'s character-strings. Node hands each octet over as one Latin-1 code
 * unit, so encoding back as Latin-1 recovers the octets exactly; they are joined first (a character
 * may span two character-strings), then decoded as UTF-8.
 */
export const decodeTxt = (chunks: ReadonlyArray<string>, ttl: number): TxtAnswer => {
  const octets = Buffer.from(chunks.join(""), "latin1")
  try {
    return { text: strictUtf8.decode(octets), ttl }
  } catch {
    const text = lossyUtf8.decode(octets)
    return { text, ttl, invalidUtf8At: Math.max(0, text.indexOf("\uFFFD")) }
  }
}

/** NXDOMAIN (`ENOTFOUND`) or no TXT records at the name (`ENODATA`). */
export class DnsNoRecords extends Data.TaggedError("DnsNoRecords")<{
  readonly name: string
  readonly code: string
}> {
  override get message(): string {
    return `no TXT records at ${this.name} (${this.code})`
  }
}

/** SERVFAIL, REFUSED, timeout, unreachable server or any other failure: try again later. */
export class DnsTemporary extends Data.TaggedError("DnsTemporary")<{
  readonly name: string
  readonly code: string
}> {
  override get message(): string {
    return `temporary DNS error looking up TXT ${this.name} (${this.code})`
  }
}

export interface LiveOptions {
  /**
   * Servers as `HostPort`s or strings (`host`, `host:port`, `[v6]`, `[v6]:port`); the system's resolvers
   * (/etc/resolv.conf) when absent or empty.
   */
  readonly servers?: ReadonlyArray<string | HostPort.HostPort> | undefined
  /** c-ares per-try timeout in milliseconds (default 5000). */
  readonly timeoutMs?: number | undefined
  /** c-ares tries per server (default 3). */
  readonly tries?: number | undefined
  /**
   * TTL reported for live answers. `node:dns` `resolveTxt` does not expose record TTLs, so caches
   * above use this bound instead (default 300 s).
   */
  readonly answerTtlSeconds?: number | undefined
}

/** node:dns `setServers` takes IP addresses only: a host name would fail at the first lookup. */
export const DnsServerAddress = HostPort.schema(53).pipe(
  Schema.filter(
    (hp) =>
      isIP(hp.host) !== 0 ||
      `expected an IP address (a resolver's name cannot be resolved), got ${JSON.stringify(hp.host)}`
  )
)

/**
 * The `dns` section of a configuration file, decoded into what `Dns.layer` takes: a server list
 * (port 53 by default), the per-try timeout (at most a minute) and the tries per server (1 to 10).
 */
export const DnsConfig = Schema.Struct({
  servers: Schema.optional(Schema.Array(DnsServerAddress)),
  timeoutMs: Schema.optional(Schema.Int.pipe(Schema.between(1, 60_000))),
  tries: Schema.optional(Schema.Int.pipe(Schema.between(1, 10)))
})
export type DnsConfig = typeof DnsConfig.Type

/** An in-memory answer: TXT records (optionally with a TTL) or a scripted failure. */
export type TestAnswer =
  | ReadonlyArray<string>
  | { readonly records: ReadonlyArray<string>; readonly ttl: number }
  | { readonly error: "nxdomain" | "nodata" | "servfail" | "timeout" }

export type TestAnswers = Readonly<Record<string, TestAnswer>> | ReadonlyMap<string, TestAnswer>

/** A slow resolver gets 5 s a try and 3 tries before a lookup counts as a temporary failure (README: dns.*). */
export const DEFAULT_TIMEOUT_MS = 5000
export const DEFAULT_TRIES = 3
const DEFAULT_TTL = 300

// c-ares codes meaning "the name has no TXT records"; every other code is temporary.
const NO_RECORD_CODES: ReadonlySet<string> = new Set(["ENOTFOUND", "ENODATA"])

const fromCode = (name: string, code: string): DnsNoRecords | DnsTemporary =>
  NO_RECORD_CODES.has(code) ? new DnsNoRecords({ name, code }) : new DnsTemporary({ name, code })

/** Case-insensitive, trailing dot optional. */
const normalizeName = (name: string): string => {
  const lower = name.toLowerCase()
  return lower.endsWith(".") ? lower.slice(0, -1) : lower
}

const fromTestAnswer = (name: string, answer: TestAnswer | undefined) => {
  if (answer === undefined) return Effect.fail(new DnsNoRecords({ name, code: "ENOTFOUND" }))
  if ("error" in answer) {
    const code = { nxdomain: "ENOTFOUND", nodata: "ENODATA", servfail: "ESERVFAIL", timeout: "ETIMEOUT" }[answer.error]
    return Effect.fail(fromCode(name, code))
  }
  const [records, ttl] = "records" in answer ? [answer.records, answer.ttl] : [answer, DEFAULT_TTL]
  if (records.length === 0) return Effect.fail(new DnsNoRecords({ name, code: "ENODATA" }))
  return Effect.succeed(records.map((text): TxtAnswer => ({ text, ttl })))
}

/** The answers keyed by normalised name; built once per answers object, so a lookup is O(1). */
const indexCache = new WeakMap<object, ReadonlyMap<string, TestAnswer>>()
const indexOf = (answers: TestAnswers): ReadonlyMap<string, TestAnswer> => {
  const cached = indexCache.get(answers)
  if (cached !== undefined) return cached
  const index = new Map<string, TestAnswer>()
  const entries = answers instanceof Map ? answers.entries() : Object.entries(answers)
  for (const [key, answer] of entries) if (!index.has(normalizeName(key))) index.set(normalizeName(key), answer)
  indexCache.set(answers, index)
  return index
}

const findAnswer = (answers: TestAnswers, name: string): TestAnswer | undefined =>
  indexOf(answers).get(normalizeName(name))

/** The resolver refused the server list (not `host`, `host:port` or `[v6]:port` IP addresses). */
export class DnsConfigError extends Data.TaggedError("DnsConfigError")<{
  readonly servers: ReadonlyArray<string>
  readonly reason: string
}> {
  override get message(): string {
    return `invalid DNS servers ${JSON.stringify(this.servers)}: ${this.reason}`
  }
}

/**
 * `txt` has no span of its own: its only caller, `TlsrptLookup.lookup`, has one per lookup, and a
 * second span per lookup was a visible share of a report round's main thread (README "The round's
 * main thread").
 */
export class Dns extends Context.Tag("@tlsrpt/dns/Dns")<
  Dns,
  {
    /** The TXT records at `name`, each record's character-strings joined, in answer order. */
    readonly txt: (name: string) => Effect.Effect<ReadonlyArray<TxtAnswer>, DnsNoRecords | DnsTemporary>
  }
>() {
  /**
   * Live TXT lookups through ONE `node:dns` `Resolver` for the layer (one c-ares channel: its socket
   * serves every lookup in flight, its server list is set once). The whole lookup is bounded by
   * timeoutMs × tries on the Clock, whatever c-ares' internal back-off does. An interrupted (or timed
   * out) lookup leaves its query to end on c-ares' own timeout and tries, its answer dropped:
   * `Resolver.cancel()` would end every query on the channel, other lookups' too. Closing the layer
   * cancels what is still in flight (docs/design.md#lookup-memory).
   */
  static readonly layer = (options: LiveOptions = {}): Layer.Layer<Dns, DnsConfigError> =>
    Layer.scoped(
      Dns,
      Effect.gen(function* () {
        const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
        const tries = options.tries ?? DEFAULT_TRIES
        const ttl = options.answerTtlSeconds ?? DEFAULT_TTL
        const servers =
          options.servers === undefined || options.servers.length === 0
            ? undefined
            : options.servers.map((s) => (typeof s === "string" ? s : HostPort.format(s)))
        // Invalid server addresses are the caller's configuration: a typed error, once, at construction.
        const resolver = yield* Effect.acquireRelease(
          Effect.try({
            try: () => {
              const resolver = new Resolver({ timeout, tries })
              if (servers !== undefined) resolver.setServers([...servers])
              return resolver
            },
            catch: (cause) =>
              new DnsConfigError({
                servers: servers ?? [],
                reason: cause instanceof Error ? cause.message : String(cause)
              })
          }),
          (resolver) => Effect.sync(() => resolver.cancel())
        )
        const deadline = Duration.millis(timeout * tries)
        const txt = Effect.fnUntraced(function* (name: string) {
          return yield* Effect.async<ReadonlyArray<TxtAnswer>, DnsNoRecords | DnsTemporary>((resume) => {
            resolver.resolveTxt(name, (err, records) => {
              if (err) resume(Effect.fail(fromCode(name, err.code ?? "EUNKNOWN")))
              else resume(Effect.succeed(records.map((chunks) => decodeTxt(chunks, ttl))))
            })
          }).pipe(
            Effect.timeoutFail({ duration: deadline, onTimeout: () => new DnsTemporary({ name, code: "ETIMEOUT" }) })
          )
        })
        return { txt }
      })
    )

  /** Fixed in-memory answers; names not listed are NXDOMAIN. */
  static readonly layerTest = (answers: TestAnswers): Layer.Layer<Dns> =>
    Layer.succeed(Dns, {
      txt: Effect.fnUntraced(function* (name: string) {
        return yield* fromTestAnswer(name, findAnswer(answers, name))
      })
    })

  /** In-memory answers read from a Ref at each query, so a test can change DNS between scenarios. */
  static readonly layerTestRef = (ref: Ref.Ref<ReadonlyMap<string, TestAnswer>>): Layer.Layer<Dns> =>
    Layer.succeed(Dns, {
      txt: Effect.fnUntraced(function* (name: string) {
        const answers = yield* Ref.get(ref)
        return yield* fromTestAnswer(name, findAnswer(answers, name))
      })
    })
}
