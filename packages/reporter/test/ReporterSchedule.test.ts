import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import { ResultStore, Store } from "@tlsrpt/store"
import { Duration, Effect, Fiber, Layer, Logger, Queue, Random, TestClock } from "effect"
import { defaultConfig, Reporter, ReporterError, type RoundSummary } from "../src/index.js"
import * as ReporterSchedule from "../src/ReporterSchedule.js"

const summary = (day: Day.Day): RoundSummary => ({ day, keys: [], reports: 0, queued: 0, kept: [], deletedRows: 0 })

/** A Reporter that records the day of each round and behaves as `script` says for the n-th round. */
const scripted = (days: Queue.Queue<string>, script: (n: number) => "ok" | "die" | "4h") => {
  let n = 0
  return Reporter.of({
    runRound: (day) =>
      Effect.suspend(() => {
        const step = script(n++)
        return Queue.offer(days, day).pipe(
          Effect.zipRight(
            step === "die"
              ? Effect.dieMessage("boom")
              : step === "4h"
                ? Effect.as(Effect.sleep(Duration.hours(4)), summary(day))
                : Effect.succeed(summary(day))
          )
        )
      })
  })
}

describe("ReporterSchedule (docs/design.md#timing-constants, docs/design.md#schedule)", () => {
  it("nextRunAt is the next 00:00 UTC plus the jitter", () => {
    const at = ReporterSchedule.nextRunAt(Date.parse("2024-01-09T13:14:15Z"), 300_000)
    assert.strictEqual(new Date(at).toISOString(), "2024-01-10T00:05:00.000Z")
    const atMidnight = ReporterSchedule.nextRunAt(Date.parse("2024-01-10T00:00:00Z"), 240_000)
    assert.strictEqual(new Date(atMidnight).toISOString(), "2024-01-11T00:04:00.000Z")
  })

  it.effect("jitter is drawn from the Random service within its bounds", () =>
    Effect.gen(function* () {
      for (let seed = 0; seed < 200; seed++) {
        const j = yield* ReporterSchedule.jitterMillis(defaultConfig).pipe(Effect.withRandom(Random.make(seed)))
        assert.isTrue(j >= 240_000 && j < 360_000, `jitter ${j}`)
      }
    })
  )

  it.effect("a round at start for the day that ended, then one round a day just after midnight", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2024-01-09T13:00:00Z"))
      const days = yield* Queue.unbounded<string>()
      const fiber = yield* ReporterSchedule.loop(defaultConfig).pipe(
        Effect.provideService(
          Reporter,
          scripted(days, () => "ok")
        ),
        Effect.fork
      )
      assert.strictEqual(yield* Queue.take(days), "2024-01-08")
      yield* TestClock.adjust(Duration.hours(11))
      assert.strictEqual(yield* Queue.size(days), 0) // 00:00 UTC, still inside the jitter
      yield* TestClock.adjust(Duration.minutes(6))
      assert.strictEqual(yield* Queue.take(days), "2024-01-09")
      yield* TestClock.adjust(Duration.days(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-10")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it("nextDayToReport: the day after the last reported one, at most CATCH_UP_DAYS before yesterday", () => {
    const d = (s: string) => s as Day.Day
    assert.strictEqual(ReporterSchedule.nextDayToReport(undefined, d("2024-01-09")), "2024-01-09")
    assert.strictEqual(ReporterSchedule.nextDayToReport(d("2024-01-08"), d("2024-01-09")), "2024-01-09")
    assert.strictEqual(ReporterSchedule.nextDayToReport(d("2024-01-09"), d("2024-01-09")), undefined)
    assert.strictEqual(ReporterSchedule.nextDayToReport(d("2024-01-07"), d("2024-01-09")), "2024-01-08")
    assert.strictEqual(ReporterSchedule.nextDayToReport(d("2023-12-01"), d("2024-01-09")), "2024-01-07")
  })

  it.effect("a round that ends after the next midnight: the day that ended meanwhile is reported at once", () =>
    Effect.gen(function* () {
      // A start-up round at 22:00 that takes the whole 4 h window ends at 02:00 the next day.
      yield* TestClock.setTime(Date.parse("2024-01-09T22:00:00Z"))
      const days = yield* Queue.unbounded<string>()
      const fiber = yield* ReporterSchedule.loop(defaultConfig).pipe(
        Effect.provideService(
          Reporter,
          scripted(days, (n) => (n === 0 ? "4h" : "ok"))
        ),
        Effect.fork
      )
      assert.strictEqual(yield* Queue.take(days), "2024-01-08")
      yield* TestClock.adjust(Duration.hours(4))
      // 2024-01-10T02:00Z: 2024-01-09 ended during the round and has not been reported.
      assert.strictEqual(yield* Queue.take(days), "2024-01-09")
      assert.strictEqual(yield* Queue.size(days), 0)
      yield* TestClock.adjust(Duration.hours(22).pipe(Duration.sum(Duration.minutes(6))))
      assert.strictEqual(yield* Queue.take(days), "2024-01-10")
      assert.strictEqual(yield* Queue.size(days), 0)
      const store = yield* ResultStore
      assert.strictEqual(yield* store.lastReportedDay, "2024-01-10")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.effect("after a restart, the days missed while down are reported oldest first (within the stale window)", () =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      yield* store.markDayReported("2024-01-02" as Day.Day)
      yield* TestClock.setTime(Date.parse("2024-01-09T13:00:00Z"))
      const days = yield* Queue.unbounded<string>()
      const fiber = yield* ReporterSchedule.loop(defaultConfig).pipe(
        Effect.provideService(
          Reporter,
          scripted(days, () => "ok")
        ),
        Effect.fork
      )
      assert.deepStrictEqual(
        [yield* Queue.take(days), yield* Queue.take(days), yield* Queue.take(days)],
        ["2024-01-06", "2024-01-07", "2024-01-08"]
      )
      assert.strictEqual(yield* Queue.size(days), 0)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.effect("a failed round is not recorded as reported: the next wake-up runs that day again", () =>
    Effect.gen(function* () {
      yield* (yield* ResultStore).markDayReported("2024-01-07" as Day.Day)
      yield* TestClock.setTime(Date.parse("2024-01-09T13:00:00Z"))
      const days = yield* Queue.unbounded<string>()
      let n = 0
      const failing = Reporter.of({
        runRound: (day) =>
          Queue.offer(days, day).pipe(
            Effect.zipRight(
              n++ === 0 ? Effect.fail(new ReporterError({ day, reason: "disk full" })) : Effect.succeed(summary(day))
            )
          )
      })
      const fiber = yield* ReporterSchedule.loop(defaultConfig).pipe(
        Effect.provideService(Reporter, failing),
        Effect.fork
      )
      assert.strictEqual(yield* Queue.take(days), "2024-01-08")
      yield* TestClock.adjust(Duration.hours(11).pipe(Duration.sum(Duration.minutes(6))))
      assert.deepStrictEqual([yield* Queue.take(days), yield* Queue.take(days)], ["2024-01-08", "2024-01-09"])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.scoped("the layer supervises the loop: a defect restarts it with backoff, never ends it", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2024-01-09T13:00:00Z"))
      const days = yield* Queue.unbounded<string>()
      yield* Layer.build(
        ReporterSchedule.layer(defaultConfig).pipe(
          Layer.provide(
            Layer.succeed(
              Reporter,
              scripted(days, (n) => (n < 2 ? "die" : "ok"))
            )
          ),
          Layer.provide(Store.layerMemory),
          Layer.provide(Logger.remove(Logger.defaultLogger))
        )
      )
      assert.strictEqual(yield* Queue.take(days), "2024-01-08") // dies
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-08") // restarted after 1 s, dies again
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual(yield* Queue.size(days), 0) // backoff doubled: 2 s
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-08") // third start succeeds
      yield* TestClock.adjust(Duration.days(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-09")
    })
  )
})
