/**
 * `FleetCluster.savingRepliesAgain`: a reply whose saving failed on the database (a PostgreSQL
 * restart) is saved again instead of being dropped (docs/design.md#fleet-faults).
 */
import { MessageStorage, Reply, ShardingConfig, Snowflake } from "@effect/cluster"
import { PersistenceError } from "@effect/cluster/ClusterError"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, TestClock } from "effect"
import { FleetCluster } from "../src/index.js"

const memoryStorage = MessageStorage.layerMemory.pipe(Layer.provide(ShardingConfig.layer()))

/** The in-memory storage whose first `failures` reply saves fail as an unreachable database does. */
const flaky = (failures: number) =>
  Effect.map(MessageStorage.MessageStorage, (storage) => {
    let calls = 0
    const failing = MessageStorage.MessageStorage.of({
      ...storage,
      saveReply: (reply) =>
        Effect.suspend(() =>
          ++calls <= failures
            ? Effect.fail(new PersistenceError({ cause: new Error("connection terminated") }))
            : storage.saveReply(reply)
        )
    })
    return { failing, calls: () => calls }
  })

const reply = Effect.map(Snowflake.makeGenerator, (gen) =>
  Reply.ReplyWithContext.fromDefect({ id: gen.unsafeNext(), requestId: gen.unsafeNext(), defect: "test" })
)

describe("FleetCluster.savingRepliesAgain", () => {
  it.effect("a reply that failed to save during a database outage of seconds is saved again", () =>
    Effect.gen(function* () {
      // @effect/cluster gives up after four tries in 800 ms; the outage here lasts ten failed tries
      const { failing, calls } = yield* flaky(10)
      const save = yield* FleetCluster.savingRepliesAgain(failing)
        .saveReply(yield* reply)
        .pipe(Effect.exit, Effect.fork)
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.join(save)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.strictEqual(calls(), 11)
    }).pipe(Effect.provide(memoryStorage))
  )

  it.effect("it gives up after about two minutes, with the error", () =>
    Effect.gen(function* () {
      const { failing } = yield* flaky(1000)
      const save = yield* FleetCluster.savingRepliesAgain(failing)
        .saveReply(yield* reply)
        .pipe(Effect.exit, Effect.fork)
      yield* TestClock.adjust("10 minutes")
      const exit = yield* Fiber.join(save)
      assert.isTrue(Exit.isFailure(exit))
    }).pipe(Effect.provide(memoryStorage))
  )
})
