/**
 * Finds a policy domain's TLSRPT record at `_smtp._tls.<A-label>.` (RFC 8460 §3, docs/design.md#record-lookup), with
 * an optional TTL cache that never keeps temporary failures (docs/design.md#temporary-dns-errors-keep-results: a DNS hiccup must not
 * stick).
 */
import { type Domain, TlsrptRecord } from "@tlsrpt/core"
import { Clock, Context, Data, Deferred, Effect, Either, Layer, Metric } from "effect"
import { Dns, type TxtAnswer } from "./Dns.js"

export interface TlsrptLookupResult {
  readonly domain: Domain.Domain
  readonly record: TlsrptRecord.TlsrptRecord
  /** The TXT text the record was parsed from. */
  readonly txt: string
}

/** NXDOMAIN, no TXT, or no TXT starting with `v=TLSRPTv1;`: the domain wants no reports. */
export class NoTlsrptRecord extends Data.TaggedError("NoTlsrptRecord")<{
  readonly domain: string
}> {
  override get message(): string {
    return `no TLSRPT record for ${this.domain}`
  }
}

/** RFC 8460 §3: more than one TLSRPT record means the domain does not implement TLSRPT. */
export class MultipleTlsrptRecords extends Data.TaggedError("MultipleTlsrptRecords")<{
  readonly domain: string
  readonly records: ReadonlyArray<string>
}> {
  override get message(): string {
    return `multiple TLSRPT records for ${this.domain} (${this.records.length})`
  }
}

/** RFC 8460 §3: a syntactically invalid record means the domain does not implement TLSRPT. */
export class TlsrptSyntaxError extends Data.TaggedError("TlsrptSyntaxError")<{
  readonly domain: string
  readonly txt: string
  readonly reason: string
  readonly position: number
}> {
  override get message(): string {
    return `TLSRPT record syntax error for ${this.domain} at ${this.position}: ${this.reason}`
  }
}

/** The DNS lookup failed for now (SERVFAIL, timeout, …): keep the results and retry later. */
export class TlsrptTemporaryError extends Data.TaggedError("TlsrptTemporaryError")<{
  readonly domain: string
  readonly code: string
}> {
  override get message(): string {
    return `temporary DNS error looking up the TLSRPT record of ${this.domain} (${this.code})`
  }
}

export type TlsrptLookupError = NoTlsrptRecord | MultipleTlsrptRecords | TlsrptSyntaxError | TlsrptTemporaryError

export type LookupOutcome = "ok" | "no_record" | "multiple" | "syntax" | "temporary"

/** Lookups by outcome (docs/design.md#metrics); cached answers count too. */
export const lookupsTotal = Metric.counter("tlsrpt_lookups_total", {
  description: "TLSRPT record lookups by outcome",
  incremental: true
})

/** Lookups answered from the cache of `layerCached`. */
export const cacheHitsTotal = Metric.counter("tlsrpt_lookup_cache_hits_total", {
  description: "TLSRPT record lookups answered from the cache",
  incremental: true
})

const outcomeOf = (exit: Either.Either<unknown, TlsrptLookupError>): LookupOutcome => {
  if (Either.isRight(exit)) return "ok"
  switch (exit.left._tag) {
    case "NoTlsrptRecord":
      return "no_record"
    case "MultipleTlsrptRecords":
      return "multiple"
    case "TlsrptSyntaxError":
      return "syntax"
    case "TlsrptTemporaryError":
      return "temporary"
  }
}

/** The TXT owner name for a policy domain, absolute (no search list). */
export const recordName = (domain: Pick<Domain.Domain, "ascii">): string => `_smtp._tls.${domain.ascii}.`

/**
 * Picks the TLSRPT record among the TXT answers (docs/design.md#record-lookup): other TXTs are ignored; a TLSRPT
 * record with a syntax error wins over everything (whatever the answer order, unlike mox which
 * stops at the first of "second valid record" or "syntax error"); two or more valid records are
 * Multiple.
 */
const selectRecord = (ascii: string, answers: ReadonlyArray<TxtAnswer>): Either.Either<Resolved, TlsrptLookupError> => {
  const valid: Array<{ readonly answer: TxtAnswer; readonly record: TlsrptRecord.TlsrptRecord }> = []
  for (const answer of answers) {
    const parsed = TlsrptRecord.parse(answer.text)
    // RFC 8460 §3: the record is UTF-8; a TLSRPT record that is not is invalid. Other TXT records are
    // none of our business, whatever their bytes.
    if (answer.invalidUtf8At !== undefined && (Either.isRight(parsed) || parsed.left._tag === "RecordSyntaxError")) {
      const reason = "invalid UTF-8"
      return Either.left(
        new TlsrptSyntaxError({ domain: ascii, txt: answer.text, reason, position: answer.invalidUtf8At })
      )
    }
    if (Either.isRight(parsed)) valid.push({ answer, record: parsed.right })
    else if (parsed.left._tag === "RecordSyntaxError") {
      const { txt, reason, position } = parsed.left
      return Either.left(new TlsrptSyntaxError({ domain: ascii, txt, reason, position }))
    }
  }
  const [first] = valid
  if (first === undefined) return Either.left(new NoTlsrptRecord({ domain: ascii }))
  if (valid.length > 1) {
    return Either.left(new MultipleTlsrptRecords({ domain: ascii, records: valid.map((v) => v.answer.text) }))
  }
  // One RRset shares one TTL; take the smallest anyway, in case a resolver reports them apart.
  const ttl = Math.min(...answers.map((a) => a.ttl))
  return Either.right({ record: first.record, txt: first.answer.text, ttl })
}

interface Resolved {
  readonly record: TlsrptRecord.TlsrptRecord
  readonly txt: string
  readonly ttl: number
}

const resolveName = (dns: Dns["Type"], ascii: string): Effect.Effect<Resolved, TlsrptLookupError> =>
  dns.txt(recordName({ ascii })).pipe(
    Effect.catchTags({
      DnsNoRecords: () => Effect.fail(new NoTlsrptRecord({ domain: ascii })),
      DnsTemporary: (e) => Effect.fail(new TlsrptTemporaryError({ domain: ascii, code: e.code }))
    }),
    Effect.flatMap((answers) => selectRecord(ascii, answers))
  )

// Tagged once per outcome: `Metric.tagged` per lookup made a new metric key to hash and look up
// each time, on the round's main thread.
const lookupCounters: Record<LookupOutcome, typeof lookupsTotal> = {
  ok: Metric.tagged(lookupsTotal, "outcome", "ok"),
  no_record: Metric.tagged(lookupsTotal, "outcome", "no_record"),
  multiple: Metric.tagged(lookupsTotal, "outcome", "multiple"),
  syntax: Metric.tagged(lookupsTotal, "outcome", "syntax"),
  temporary: Metric.tagged(lookupsTotal, "outcome", "temporary")
}

// One metric increment and, for errors, one log line per lookup.
const observe = (
  domain: Domain.Domain,
  result: Either.Either<TlsrptLookupResult, TlsrptLookupError>,
  cached: boolean
): Effect.Effect<void> => {
  const outcome = outcomeOf(result)
  const count = Metric.increment(lookupCounters[outcome])
  if (Either.isRight(result)) return count
  const e = result.left
  const log =
    e._tag === "NoTlsrptRecord"
      ? Effect.logInfo("no TLSRPT record")
      : e._tag === "TlsrptTemporaryError"
        ? Effect.logWarning("temporary DNS error looking up the TLSRPT record").pipe(
            Effect.annotateLogs({ code: e.code })
          )
        : // RFC 8460 §3: the domain is treated as not implementing TLSRPT.
          Effect.logWarning(`ignoring invalid TLSRPT DNS record: ${e.message}`)
  return Effect.zipRight(
    count,
    log.pipe(Effect.annotateLogs({ domain: domain.ascii, outcome, ...(cached ? { cached: true } : {}) }))
  )
}

/**
 * What `layerCached` keeps for a name without a record: a marker, not the NoTlsrptRecord. An Error
 * keeps V8's structured stack trace, whose call sites hold the fiber that made it (its spans, its
 * context, its DNS query) for as long as the entry stays: after a round, thousands of them.
 */
const NO_RECORD = "no-record"
type Cached = Either.Either<Resolved, TlsrptLookupError | typeof NO_RECORD>

/** How often, at most, `layerCached` drops its expired entries (Clock time). */
const SWEEP_EVERY_MS = 60_000

export interface CacheOptions {
  /** Upper bound on how long any answer is kept, seconds (default 3600). */
  readonly maxTtlSeconds?: number | undefined
  /** How long "no record" is kept, seconds, before the max bound (default 300; DNS gives us no SOA minimum). */
  readonly negativeTtlSeconds?: number | undefined
  /** Domains kept at most; the oldest entry goes first (default 10000). */
  readonly capacity?: number | undefined
}

export class TlsrptLookup extends Context.Tag("@tlsrpt/dns/TlsrptLookup")<
  TlsrptLookup,
  {
    /** The domain's single valid TLSRPT record, or why there is none. */
    readonly lookup: (domain: Domain.Domain) => Effect.Effect<TlsrptLookupResult, TlsrptLookupError>
  }
>() {
  static readonly layer: Layer.Layer<TlsrptLookup, never, Dns> = Layer.effect(
    TlsrptLookup,
    Effect.gen(function* () {
      const dns = yield* Dns
      const lookup = Effect.fn("TlsrptLookup.lookup")(function* (domain: Domain.Domain) {
        const result = yield* Effect.either(
          Effect.map(resolveName(dns, domain.ascii), (r) => ({ domain, record: r.record, txt: r.txt }))
        )
        yield* observe(domain, result, false)
        return yield* result
      })
      return { lookup }
    })
  )

  /**
   * Like `layer`, keeping answers up to their TTL (bounded by `maxTtlSeconds`) on the Clock:
   * concurrent lookups of one name share one query, the least recently used entry goes first. Only
   * positive answers and "no record" are kept; temporary errors never are, and neither are syntax
   * errors or multiple records, so a fixed record is seen at the next lookup.
   *
   * Hand-written rather than Effect's `Cache`, which keeps an LRU node for every miss that outlives
   * its entry (only capacity pressure drops them) and expired entries until the name is asked
   * again: a worker asking a few thousand names a day would grow all month. Here expired entries
   * are swept at most once a minute, at a miss (docs/design.md#lookup-memory).
   */
  static readonly layerCached = (options: CacheOptions = {}): Layer.Layer<TlsrptLookup, never, Dns> =>
    Layer.effect(
      TlsrptLookup,
      Effect.gen(function* () {
        const dns = yield* Dns
        const maxTtl = options.maxTtlSeconds ?? 3600
        const negativeTtl = Math.min(options.negativeTtlSeconds ?? 300, maxTtl)
        const capacity = Math.max(0, options.capacity ?? 10_000)
        const ttlSeconds = (resolved: Cached): number =>
          Either.isRight(resolved)
            ? Math.min(resolved.right.ttl, maxTtl)
            : resolved.left === NO_RECORD
              ? negativeTtl
              : 0
        // By A-label, least recently used first (a Map iterates in insertion order).
        const entries = new Map<string, { readonly value: Cached; readonly until: number }>()
        const inFlight = new Map<string, Deferred.Deferred<Cached>>()
        let sweptAt = Number.NEGATIVE_INFINITY

        const store = (key: string, value: Cached, now: number) => {
          const ttl = ttlSeconds(value)
          if (ttl <= 0 || capacity === 0) return
          entries.set(key, { value, until: now + ttl * 1000 })
          for (const oldest of entries.keys()) {
            if (entries.size <= capacity) break
            entries.delete(oldest)
          }
        }

        // The answer for `key` and whether it came from the cache (or another lookup's query).
        const resolve = (key: string): Effect.Effect<readonly [Cached, boolean]> =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const hit = entries.get(key)
            if (hit !== undefined) {
              entries.delete(key)
              // An entry holds while now < until: a TTL of n seconds ends at n.
              if (now < hit.until) {
                entries.set(key, hit)
                return [hit.value, true] as const
              }
            }
            const pending = inFlight.get(key)
            if (pending !== undefined) {
              // Sharing another lookup's query; if that lookup was interrupted, ask ourselves.
              return yield* Deferred.await(pending).pipe(
                Effect.map((value) => [value, true] as const),
                Effect.catchAllCause(() => resolve(key))
              )
            }
            if (now - sweptAt >= SWEEP_EVERY_MS) {
              sweptAt = now
              for (const [k, e] of entries) if (now >= e.until) entries.delete(k)
            }
            // Registered and released with no interruption in between: a stale entry would hold every
            // later lookup of the name.
            const value = yield* Effect.uninterruptibleMask((restore) =>
              Effect.flatMap(Deferred.make<Cached>(), (deferred) => {
                inFlight.set(key, deferred)
                return restore(
                  Effect.map(
                    Effect.either(resolveName(dns, key)),
                    Either.mapLeft((e): TlsrptLookupError | typeof NO_RECORD =>
                      e._tag === "NoTlsrptRecord" ? NO_RECORD : e
                    )
                  )
                ).pipe(
                  Effect.onExit((exit) =>
                    Effect.suspend(() => {
                      inFlight.delete(key)
                      return Deferred.done(deferred, exit)
                    })
                  )
                )
              })
            )
            store(key, value, yield* Clock.currentTimeMillis)
            return [value, false] as const
          })

        const lookup = Effect.fn("TlsrptLookup.lookup")(function* (domain: Domain.Domain) {
          const [resolved, cached] = yield* resolve(domain.ascii)
          if (cached) yield* Metric.increment(cacheHitsTotal)
          const result = Either.mapBoth(resolved, {
            onLeft: (e) => (e === NO_RECORD ? new NoTlsrptRecord({ domain: domain.ascii }) : e),
            onRight: (r) => ({ domain, record: r.record, txt: r.txt })
          })
          yield* observe(domain, result, cached)
          return yield* result
        })
        return { lookup }
      })
    )
}
