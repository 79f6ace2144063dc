import { SingleRunner } from "@effect/cluster"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Transport } from "@tlsrpt/mail"
import { defaultConfig } from "@tlsrpt/reporter"
import type { Day } from "@tlsrpt/core"
import { Outbox, ResultStore, Store, StoreError } from "@tlsrpt/store"
import { Context, Duration, Effect, Layer, Ref, TestClock } from "effect"
import { FleetCluster } from "../src/index.js"
import { dkimPem, lookupLayer, mailLayer, rows } from "./FleetEnv.js"

const config = {
  ...defaultConfig,
  https: false,
  temporaryRetries: [],
  jitterMin: Duration.zero,
  jitterMax: Duration.zero
}

/** The round requests stored in the cluster tables (payload ids). */
const requested = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ payload: string }>`SELECT payload FROM cluster_messages WHERE entity_type = 'ReportRound'`
  return rows.map((r) => (JSON.parse(r.payload) as { id: string }).id).sort()
})

/** The reply stored for the round request `id` (its exit, as JSON). */
const replyOf = (id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ payload: string; reply: string }>`
      SELECT m.payload, r.payload AS reply FROM cluster_messages m JOIN cluster_replies r ON r.request_id = m.id
      WHERE m.entity_type = 'ReportRound'`
    return rows.find((r) => (JSON.parse(r.payload) as { id: string }).id === id)?.reply
  })

/** The store's ResultStore, whose `keysUpTo` (the round's plan) fails while `broken` is set. */
const failingPlan = (broken: Ref.Ref<boolean>) =>
  Layer.effect(
    ResultStore,
    Effect.map(ResultStore, (store) => ({
      ...store,
      keysUpTo: (day: Day.Day) =>
        Effect.flatMap(Ref.get(broken), (b) =>
          b ? Effect.fail(new StoreError({ operation: "keysUpTo", cause: "disk I/O error" })) : store.keysUpTo(day)
        )
    }))
  )

describe("the fleet's daily schedule (docs/design.md#fleet-round) on SingleRunner and TestClock", () => {
  it.scoped("a round for the day that ended is requested at start-up, and again after 00:00 UTC", () =>
    Effect.gen(function* () {
      // cluster + TestClock works for seconds only: start two seconds before midnight
      yield* TestClock.setTime(Date.UTC(2025, 0, 9, 23, 59, 58))
      const pair = yield* dkimPem
      const stages = Layer.mergeAll(
        Store.layerMemory,
        lookupLayer(1),
        mailLayer(pair.privateKeyPem),
        Transport.layerTest()
      )
      yield* Effect.gen(function* () {
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* requested, ["daily:2025-01-08"])
        for (let i = 0; i < 15; i++) yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* requested, ["daily:2025-01-08", "daily:2025-01-09"])
        assert.strictEqual(yield* (yield* ResultStore).lastReportedDay, "2025-01-09")
      }).pipe(
        Effect.provide(
          FleetCluster.entities(config).pipe(
            Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
            Layer.provideMerge(stages)
          )
        )
      )
    })
  )

  it.scoped(
    "a fleet that was down for days catches up: one round per missed day, oldest first, as the single process does",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.UTC(2025, 0, 9, 12))
        const pair = yield* dkimPem
        const stages = yield* Layer.build(
          Layer.mergeAll(Store.layerMemory, lookupLayer(1), mailLayer(pair.privateKeyPem), Transport.layerTest())
        )
        // before the fleet starts: the last round it ran was for the 4th; the 5th to the 8th were missed
        const store = Context.get(stages, ResultStore)
        yield* store.markDayReported("2025-01-04" as Day.Day)
        // rows of the 6th, which the round of the 6th reports
        yield* store.addResults(rows(1, "2025-01-06" as Day.Day))
        yield* Effect.gen(function* () {
          // the rounds are paced (the round of the 6th waits its gap between its two keys): step the clock
          for (let i = 0; i < 900 && (yield* store.lastReportedDay) !== "2025-01-08"; i++)
            yield* TestClock.adjust("1 second")
          // catch-up starts at the oldest day whose rows are not stale (the single-process rule), one round a day
          assert.deepStrictEqual(yield* requested, [
            "daily:2025-01-06@2025-01-09",
            "daily:2025-01-07@2025-01-09",
            "daily:2025-01-08"
          ])
          assert.strictEqual(yield* store.lastReportedDay, "2025-01-08")
          // the round of the 6th sent its two reports (the recipient domain and its MX host)
          assert.deepStrictEqual(
            (yield* (yield* Outbox).list()).map((m) => m.day),
            ["2025-01-06", "2025-01-06"]
          )
        }).pipe(
          Effect.provide(
            FleetCluster.entities(config).pipe(
              Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
              Layer.provideMerge(Layer.succeedContext(stages))
            )
          )
        )
      }),
    120_000
  )

  it.scoped(
    "a daily round that failed is asked for again at the next wake-up, as its catch-up daily:<day>@<today>",
    () =>
      Effect.gen(function* () {
        // start-up three minutes before midnight: the round of the 8th runs and fails on its store
        yield* TestClock.setTime(Date.UTC(2025, 0, 9, 23, 57))
        const pair = yield* dkimPem
        const base = yield* Layer.build(
          Layer.mergeAll(Store.layerMemory, lookupLayer(1), mailLayer(pair.privateKeyPem), Transport.layerTest())
        )
        const store = Context.get(base, ResultStore)
        yield* store.markDayReported("2025-01-07" as Day.Day)
        yield* store.addResults(rows(1, "2025-01-08" as Day.Day))
        const broken = yield* Ref.make(true)
        const stages = Layer.provideMerge(failingPlan(broken), Layer.succeedContext(base))
        yield* Effect.gen(function* () {
          // the round retries on its store for about two minutes, then stores its failure
          for (let i = 0; i < 150 && (yield* replyOf("daily:2025-01-08")) === undefined; i++)
            yield* TestClock.adjust("1 second")
          assert.include(yield* replyOf("daily:2025-01-08"), "RoundFailed")
          assert.strictEqual(yield* store.lastReportedDay, "2025-01-07")
          assert.deepStrictEqual(yield* (yield* Outbox).list(), [])
          // the store is back; the next wake-up is the cron at 00:00 UTC on the 10th
          yield* Ref.set(broken, false)
          for (let i = 0; i < 900 && (yield* store.lastReportedDay) !== "2025-01-09"; i++)
            yield* TestClock.adjust("1 second")
          // the 8th is asked for again under its catch-up id (not answered from the stored failure),
          // then the 9th, the day that just ended
          assert.deepStrictEqual(yield* requested, [
            "daily:2025-01-08",
            "daily:2025-01-08@2025-01-10",
            "daily:2025-01-09"
          ])
          assert.strictEqual(yield* store.lastReportedDay, "2025-01-09")
          // the rows of the 8th were reported: the recipient domain and its MX host
          assert.deepStrictEqual(
            (yield* (yield* Outbox).list()).map((m) => m.day),
            ["2025-01-08", "2025-01-08"]
          )
        }).pipe(
          Effect.provide(
            FleetCluster.entities(config).pipe(
              Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
              Layer.provideMerge(stages)
            )
          )
        )
      }),
    120_000
  )
})
