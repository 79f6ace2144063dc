import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Logger, Queue, Ref, TestClock } from "effect"
import { Supervise } from "../src/index.js"

/** A loop body that fails with `kinds[n]` on its n-th start ("ok" runs forever), reporting each start. */
const scripted = (starts: Queue.Queue<number>, kinds: ReadonlyArray<"fail" | "die" | "ok">) =>
  Effect.gen(function* () {
    const count = yield* Ref.make(0)
    return Effect.gen(function* () {
      const n = yield* Ref.getAndUpdate(count, (c) => c + 1)
      yield* Queue.offer(starts, n)
      const kind = kinds[n] ?? "ok"
      if (kind === "fail") return yield* Effect.fail(`failure ${n}`)
      if (kind === "die") return yield* Effect.die(new Error(`defect ${n}`))
      return yield* Effect.never
    })
  })

describe("Supervise.supervise (TestClock)", () => {
  it.effect("restarts after failures and defects with exponential backoff, logging each cause", () =>
    Effect.gen(function* () {
      const starts = yield* Queue.unbounded<number>()
      const logs: Array<string> = []
      const logger = Logger.make(({ message, logLevel }) => logs.push(`${logLevel.label} ${String(message)}`))
      const body = yield* scripted(starts, ["fail", "die", "fail", "ok"])
      const fiber = yield* body.pipe(
        Supervise.supervise("loop"),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Effect.fork
      )
      assert.strictEqual(yield* Queue.take(starts), 0)
      for (const [delay, n] of [
        [1, 1],
        [2, 2],
        [4, 3]
      ] as const) {
        yield* TestClock.adjust(Duration.seconds(delay - 0.001))
        assert.strictEqual(yield* Queue.size(starts), 0, `no restart before ${delay} s`)
        yield* TestClock.adjust(Duration.millis(1))
        assert.strictEqual(yield* Queue.take(starts), n)
      }
      assert.strictEqual(logs.filter((l) => l.includes("loop crashed, restarting")).length, 3)
      assert.isTrue(logs.every((l) => l.startsWith("ERROR")))
      assert.isNull(fiber.unsafePoll())
      yield* Fiber.interrupt(fiber)
    })
  )

  it.effect("the delay is capped at maxDelay", () =>
    Effect.gen(function* () {
      const starts = yield* Queue.unbounded<number>()
      const body = yield* scripted(
        starts,
        Array.from({ length: 20 }, () => "fail" as const)
      )
      const fiber = yield* body.pipe(
        Supervise.supervise("loop", { maxDelay: "10 seconds" }),
        Effect.provide(Logger.remove(Logger.defaultLogger)),
        Effect.fork
      )
      yield* TestClock.adjust(Duration.seconds(1 + 2 + 4 + 8)) // 4 restarts, then the cap applies
      assert.strictEqual(yield* Queue.size(starts), 5)
      yield* TestClock.adjust(Duration.seconds(10))
      assert.strictEqual(yield* Queue.size(starts), 6)
      yield* TestClock.adjust(Duration.seconds(10))
      assert.strictEqual(yield* Queue.size(starts), 7)
      yield* Fiber.interrupt(fiber)
    })
  )

  it.effect("interruption ends it: no restart, no error log", () =>
    Effect.gen(function* () {
      const starts = yield* Queue.unbounded<number>()
      const logs: Array<string> = []
      const body = yield* scripted(starts, ["ok"])
      const fiber = yield* body.pipe(
        Supervise.supervise("loop"),
        Effect.provide(
          Logger.replace(
            Logger.defaultLogger,
            Logger.make(({ message }) => logs.push(String(message)))
          )
        ),
        Effect.fork
      )
      assert.strictEqual(yield* Queue.take(starts), 0)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      yield* TestClock.adjust(Duration.minutes(10))
      assert.strictEqual(yield* Queue.size(starts), 0)
      assert.deepStrictEqual(logs, [])
    })
  )
})
