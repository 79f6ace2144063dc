/**
 * `FleetCluster.savingRepliesAgain`: a reply whose saving failed on the database (a PostgreSQL
 * restart) is saved again instead of being dropped (docs/design.md#fleet-faults).
 */
import {
  EntityAddress,
  EntityId,
  EntityType,
  Message,
  MessageStorage,
  Reply,
  ShardId,
  ShardingConfig,
  Snowflake
} from "@effect/cluster"
import { Headers } from "@effect/platform"
import { PersistenceError } from "@effect/cluster/ClusterError"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
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

  it.effect("a reply another runner saved first (a unique violation) is not saved again", () =>
    Effect.gen(function* () {
      const storage = yield* MessageStorage.MessageStorage
      let calls = 0
      const duplicate = MessageStorage.MessageStorage.of({
        ...storage,
        saveReply: () =>
          Effect.suspend(() => {
            calls++
            return Effect.fail(
              new PersistenceError({ cause: Object.assign(new Error("duplicate key"), { code: "23505" }) })
            )
          })
      })
      const exit = yield* FleetCluster.savingRepliesAgain(duplicate)
        .saveReply(yield* reply)
        .pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(calls, 1)
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

  it.effect("so is a reply through the respond of a request read from storage (how runners answer)", () =>
    Effect.gen(function* () {
      const gen = yield* Snowflake.makeGenerator
      let calls = 0
      const request = new Message.IncomingRequest({
        envelope: {
          _tag: "Request",
          requestId: gen.unsafeNext(),
          address: EntityAddress.make({
            shardId: ShardId.make("default", 1),
            entityType: EntityType.EntityType.make("ReportKey"),
            entityId: EntityId.make("k")
          }),
          tag: "Send",
          payload: {},
          headers: Headers.empty
        },
        lastSentReply: Option.none(),
        // the database is down for the first ten saves
        respond: () =>
          Effect.suspend(() =>
            ++calls <= 10
              ? Effect.fail(new PersistenceError({ cause: new Error("connection terminated") }))
              : Effect.void
          )
      })
      const storage = yield* MessageStorage.MessageStorage
      const read = FleetCluster.savingRepliesAgain(
        MessageStorage.MessageStorage.of({ ...storage, unprocessedMessages: () => Effect.succeed([request]) })
      )
      const [message] = yield* read.unprocessedMessages([])
      assert.strictEqual(message?._tag, "IncomingRequest")
      if (message?._tag !== "IncomingRequest") return
      const save = yield* message.respond(yield* reply).pipe(Effect.exit, Effect.fork)
      yield* TestClock.adjust("1 minute")
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(save)))
      assert.strictEqual(calls, 11)
    }).pipe(Effect.provide(memoryStorage))
  )
})
