import { SingleRunner } from "@effect/cluster"
import { assert, describe, it } from "@effect/vitest"
import { Delivery, TestTransport, Transport } from "@tlsrpt/mail"
import { defaultConfig, Reporter, ReporterLive } from "@tlsrpt/reporter"
import { Outbox, ResultStore, Store } from "@tlsrpt/store"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { ReportKey, ReportRound } from "../src/index.js"
import { DAY, dkimPem, lookupLayer, mailLayer, rows } from "./FleetEnv.js"

const N = 12
const config = { ...defaultConfig, https: false, temporaryRetries: [] }

const stages = Effect.map(dkimPem, (pair) =>
  Layer.mergeAll(Store.layerMemory, lookupLayer(N), mailLayer(pair.privateKeyPem), Transport.layerTest())
)

/** The fleet's entities on one runner whose cluster tables live in the store's SQLite database. */
const fleet = Effect.map(stages, (deps) =>
  Layer.mergeAll(ReportKey.layer(config), ReportRound.layer(config, { concurrency: 8 })).pipe(
    Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
    Layer.provideMerge(Delivery.layerManual()),
    Layer.provideMerge(deps)
  )
)

/** What reached the transport: (destination, report-id) pairs, sorted. */
const delivered = Effect.gen(function* () {
  yield* (yield* Delivery).runOnce
  const sent = yield* (yield* TestTransport).sent
  return sent.map((m) => `${m.destination} ${m.reportId}`).sort()
})

describe("fleet on SingleRunner (SQLite)", () => {
  it.live("a round through the entities queues the same reports as the plain reporter", () =>
    Effect.gen(function* () {
      const viaFleet = yield* Effect.gen(function* () {
        yield* (yield* ResultStore).addResults(rows(N))
        const summary = yield* ReportRound.request(new ReportRound.RunRound({ id: "t-1", day: DAY, pace: false }))
        const outbox = yield* (yield* Outbox).list()
        return { summary, outbox, sent: yield* delivered }
      }).pipe(Effect.provide(yield* fleet))
      const viaReporter = yield* Effect.gen(function* () {
        yield* (yield* ResultStore).addResults(rows(N))
        const summary = yield* (yield* Reporter).runRound(DAY, { pace: false })
        return { summary, sent: yield* delivered }
      }).pipe(
        Effect.provide(
          Layer.mergeAll(ReporterLive.layer(config), Delivery.layerManual()).pipe(Layer.provideMerge(yield* stages))
        )
      )
      // 12 recipient-domain reports and 7 MX-host reports
      assert.strictEqual(viaFleet.summary.reports, N + 7)
      assert.deepStrictEqual(viaFleet.sent, viaReporter.sent)
      assert.deepStrictEqual(
        viaFleet.summary.keys.map((k) => `${k.phase} ${k.policyDomain} ${k.outcome}`),
        viaReporter.summary.keys.map((k) => `${k.phase} ${k.policyDomain} ${k.outcome}`)
      )
      // docs/design.md#two-phases: every phase-1 message is committed before any phase-2 message
      const phase1 = viaFleet.outbox.filter((m) => m.policyDomain.startsWith("d")).map((m) => m.id)
      const phase2 = viaFleet.outbox.filter((m) => m.policyDomain.startsWith("mx")).map((m) => m.id)
      assert.isTrue(Math.max(...phase1) < Math.min(...phase2))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
  )

  it.live("asking again for a round with the same id answers from the stored reply; a new id sends nothing twice", () =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      yield* store.addResults(rows(N))
      const first = yield* ReportRound.request(new ReportRound.RunRound({ id: "daily:x", day: DAY, pace: false }))
      const again = yield* ReportRound.request(new ReportRound.RunRound({ id: "daily:x", day: DAY, pace: false }))
      assert.deepStrictEqual(again, first)
      const queued = yield* (yield* Outbox).count()
      assert.strictEqual(queued, N + 7)
      // the rows are gone after the round: a new request finds nothing to send
      const empty = yield* ReportRound.request(new ReportRound.RunRound({ id: "send:y", day: DAY, pace: false }))
      assert.strictEqual(empty.keys.length, 0)
      // the same results recorded again compose the same reports, and the outbox keeps (report-id,
      // destination) unique: nothing is queued twice
      yield* store.addResults(rows(N))
      yield* ReportRound.request(new ReportRound.RunRound({ id: "send:z", day: DAY, pace: false }))
      assert.strictEqual(yield* (yield* Outbox).count(), queued)
    }).pipe(Effect.provide(Layer.unwrapEffect(fleet)), Logger.withMinimumLogLevel(LogLevel.Warning))
  )
})
