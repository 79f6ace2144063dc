import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import { Duration, Effect, Fiber, Queue, Random, TestClock } from "effect"
import { defaultConfig, Reporter, type RoundSummary } from "../src/index.js"
import * as ReporterSchedule from "../src/ReporterSchedule.js"

const summary = (day: Day.Day): RoundSummary => ({ day, keys: [], reports: 0, queued: 0, kept: [], deletedRows: 0 })

/** A Reporter that records the day of each round and behaves as `script` says for the n-th round. */
const scripted = (days: Queue.Queue<string>, script: (n: number) => "ok" | "die") => {
  let n = 0
  return Reporter.of({
    runRound: (day) =>
      Effect.suspend(() => {
        const step = script(n++)
        return Queue.offer(days, day).pipe(
          Effect.zipRight(step === "die" ? Effect.dieMessage("boom") : Effect.succeed(summary(day)))
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
    })
  )

  it.effect("a defect in the loop restarts it with backoff, never ends it", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2024-01-09T13:00:00Z"))
      const days = yield* Queue.unbounded<string>()
      const fiber = yield* ReporterSchedule.supervise(
        "test",
        ReporterSchedule.loop(defaultConfig).pipe(
          Effect.provideService(
            Reporter,
            scripted(days, (n) => (n < 2 ? "die" : "ok"))
          )
        )
      ).pipe(Effect.fork)
      assert.strictEqual(yield* Queue.take(days), "2024-01-08") // dies
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-08") // restarted after 1 s, dies again
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual(yield* Queue.size(days), 0) // backoff doubled: 2 s
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-08") // third start succeeds
      yield* TestClock.adjust(Duration.days(1))
      assert.strictEqual(yield* Queue.take(days), "2024-01-09")
      assert.isNull(fiber.unsafePoll())
      yield* Fiber.interrupt(fiber)
    })
  )
})
