/**
 * One MTA host's collector as its own process, for the `fleet` bench: OUTCOMES session outcomes over
 * DOMAINS recipient domains (3 MX hosts each, 5 % failures; every host sees the same domains, so the
 * hosts' rows for one key sum in the database) recorded through `Collector.record` into the shared
 * PostgreSQL store (`Store.layerPg`), final flush included. Args: URL WRITER OUTCOMES DOMAINS. Prints one
 * JSON line: the timed part's start and end (epoch ms), the outcomes recorded and the rows flushed.
 */
import { Collector, decodeOutcome, type SessionOutcome } from "@tlsrpt/collector"
import { ResultStore, Store } from "@tlsrpt/store"
import { Context, Effect, Either, Layer } from "effect"

const [url = "", writer = "0", outcomes = "100000", domains = "2000"] = process.argv.slice(2)
const OUTCOMES = Number(outcomes)
const DOMAINS = Number(domains)
const MX_PER_DOMAIN = 3

/** The outcome for domain n, MX host m, failed or not (JSON, as `tlsrpt record` reads it). */
const outcome = (n: number, m: number, failed: boolean): SessionOutcome.SessionOutcome => {
  const recipient = `d${n}.example`
  const result = failed ? "failure" : "success"
  return Either.getOrThrow(
    decodeOutcome({
      timestamp: "2025-01-15T12:00:00Z",
      recipientDomain: recipient,
      mxHost: `mx${m}.${recipient}`,
      sendingIp: `192.0.2.${Number(writer) + 1}`,
      receivingIp: `198.51.${n % 256}.${m + 1}`,
      policies: [
        n % 10 < 3
          ? {
              type: "sts",
              policyLines: ["version: STSv1", "mode: enforce", `mx: *.${recipient}`, "max_age: 604800"],
              mxPatterns: [`*.${recipient}`],
              result,
              ...(failed ? { failureDetails: [{ resultType: "certificate-host-mismatch" }] } : {})
            }
          : { type: "no-policy-found", scope: "recipient-domain", result },
        { type: "no-policy-found", scope: "mx-host", result }
      ]
    })
  )
}

const templates = Array.from({ length: DOMAINS * MX_PER_DOMAIN * 2 }, (_, i) =>
  outcome(Math.floor(i / (MX_PER_DOMAIN * 2)), Math.floor(i / 2) % MX_PER_DOMAIN, i % 2 === 1)
)
// a fixed pseudo-random sequence per writer (a linear congruential step), so runs compare
let seed = 8460 + Number(writer)
const next = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff
  return seed
}
const sequence = Array.from({ length: OUTCOMES }, () => {
  const r = next()
  const failed = r % 100 < 5 ? 1 : 0
  return (Math.floor(r / 100) % (DOMAINS * MX_PER_DOMAIN)) * 2 + failed
})

const main = Effect.gen(function* () {
  // the store is opened (and migrated) before the clock starts
  const store = yield* ResultStore
  const start = Date.now()
  const stats = yield* Effect.scoped(
    Effect.gen(function* () {
      const collector = Context.get(yield* Layer.build(Collector.layer({})), Collector)
      for (const i of sequence) yield* collector.record(templates[i]!)
      return collector
    })
  ).pipe(
    Effect.provideService(ResultStore, store),
    // closing the collector's scope did the final flush
    Effect.flatMap((collector) => collector.stats)
  )
  const end = Date.now()
  console.log(JSON.stringify({ writer: Number(writer), start, end, recorded: stats.recorded, rows: stats.flushed }))
}).pipe(Effect.provide(Store.layerPg({ url })), Effect.scoped)

Effect.runPromise(main).catch((e) => {
  console.error(e)
  process.exit(1)
})
