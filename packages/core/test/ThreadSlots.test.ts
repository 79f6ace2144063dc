import { Worker } from "node:worker_threads"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Scope } from "effect"
import * as ThreadSlots from "../src/ThreadSlots.js"

// Echoes each message; "exit" makes it exit on its own with code 3.
const ECHO = `const { parentPort } = require("node:worker_threads")
parentPort.on("message", (m) => { if (m === "exit") process.exit(3); parentPort.postMessage(m) })`

interface Log {
  started: number
  readonly messages: Array<unknown>
  readonly failures: Array<string>
  readonly closed: Array<number>
}

// Long enough that a stalled test machine does not retire a thread between two steps of a test.
const IDLE = Duration.millis(400)
/** Longer than IDLE with room to spare: the idle timer has fired by then. */
const RETIRED = "1200 millis"

/** Slots whose state is the count of messages in flight. */
const slots = (log: Log, idle: Duration.DurationInput = IDLE) =>
  ThreadSlots.make<{ inFlight: number; readonly index: number }, unknown>({
    size: 2,
    idle,
    state: (() => {
      let index = 0
      return () => ({ inFlight: 0, index: index++ })
    })(),
    busy: (s) => s.inFlight > 0,
    start: () => {
      log.started++
      return new Worker(ECHO, { eval: true })
    },
    name: "test thread",
    onMessage: ({ state }, message) => {
      state.inFlight--
      log.messages.push(message)
    },
    onFail: ({ state }, reason) => {
      state.inFlight = 0
      log.failures.push(reason)
    },
    onClose: ({ state }) => {
      log.closed.push(state.index)
    }
  })

const newLog = (): Log => ({ started: 0, messages: [], failures: [], closed: [] })

/** Posts `message` to the slot's thread (started if needed) and waits for its answer. */
const ask = <S extends { inFlight: number }>(
  pool: ThreadSlots.ThreadSlots<S>,
  slot: number,
  message: unknown,
  log: Log
) =>
  Effect.gen(function* () {
    const s = pool.slots[slot]!
    pool.working()
    s.state.inFlight++
    const before = log.messages.length
    pool.worker(s).postMessage(message)
    while (log.messages.length === before) yield* Effect.sleep("5 millis")
  })

/** The thread's exit code, listened for from now on (call it before the thread may exit). */
const exitOf = (w: Worker): Promise<number> => new Promise((resolve) => w.once("exit", resolve))

describe("ThreadSlots", () => {
  it.scopedLive(
    "a slot's thread starts with its first work; all are retired once none is busy for the idle period",
    () =>
      Effect.gen(function* () {
        const log = newLog()
        const pool = yield* slots(log)
        assert.strictEqual(pool.threads(), 0)
        yield* ask(pool, 0, "a", log)
        assert.strictEqual(pool.threads(), 1)
        yield* ask(pool, 1, "b", log)
        yield* ask(pool, 0, "c", log)
        assert.deepStrictEqual([pool.threads(), log.started], [2, 2])
        assert.deepStrictEqual(log.messages, ["a", "b", "c"])
        const exits = pool.slots.map((s) => exitOf(s.worker!))
        yield* Effect.sleep(RETIRED)
        assert.strictEqual(pool.threads(), 0)
        // Retired threads exit; that is not taken for a failure.
        yield* Effect.promise(() => Promise.all(exits))
        assert.deepStrictEqual(log.failures, [])
        // New work starts a thread again.
        yield* ask(pool, 1, "d", log)
        assert.deepStrictEqual([pool.threads(), log.started], [1, 3])
      })
  )

  it.scopedLive("a busy slot keeps its thread at the idle period; the others are retired", () =>
    Effect.gen(function* () {
      const log = newLog()
      const pool = yield* slots(log)
      yield* ask(pool, 0, "a", log)
      yield* ask(pool, 1, "b", log)
      // Slot 1 has work in flight that never answers: its thread stays.
      pool.slots[1]!.state.inFlight++
      pool.settled()
      yield* Effect.sleep(RETIRED)
      assert.isUndefined(pool.slots[0]!.worker)
      assert.isDefined(pool.slots[1]!.worker)
      // Nothing is armed while a slot is busy; once it settles, the idle period retires it too.
      pool.slots[1]!.state.inFlight = 0
      pool.settled()
      yield* Effect.sleep(RETIRED)
      assert.strictEqual(pool.threads(), 0)
    })
  )

  it.scopedLive("working() stops the idle timer until settled() again", () =>
    Effect.gen(function* () {
      const log = newLog()
      const pool = yield* slots(log)
      yield* ask(pool, 0, "a", log)
      pool.working()
      yield* Effect.sleep(RETIRED)
      assert.strictEqual(pool.threads(), 1)
      pool.settled()
      yield* Effect.sleep(RETIRED)
      assert.strictEqual(pool.threads(), 0)
    })
  )

  it.scopedLive(
    "a thread that exits on its own is the slot's failure, with the reason; the next work starts a new one",
    () =>
      Effect.gen(function* () {
        const log = newLog()
        const pool = yield* slots(log, Duration.minutes(1))
        yield* ask(pool, 0, "a", log)
        const first = pool.slots[0]!.worker!
        pool.slots[0]!.state.inFlight++
        const exit = exitOf(first)
        first.postMessage("exit")
        assert.strictEqual(yield* Effect.promise(() => exit), 3)
        while (log.failures.length === 0) yield* Effect.sleep("5 millis")
        assert.deepStrictEqual(log.failures, ["test thread exited with code 3"])
        assert.isUndefined(pool.slots[0]!.worker)
        assert.strictEqual(pool.slots[0]!.state.inFlight, 0)
        yield* ask(pool, 0, "b", log)
        assert.notStrictEqual(pool.slots[0]!.worker, first)
        assert.deepStrictEqual([log.started, log.messages], [2, ["a", "b"]])
      })
  )

  it.live("closing the scope fails each slot's work (onClose) and terminates the threads; no failure is reported", () =>
    Effect.gen(function* () {
      const log = newLog()
      const scope = yield* Scope.make()
      const pool = yield* slots(log, Duration.minutes(1)).pipe(Scope.extend(scope))
      yield* ask(pool, 0, "a", log)
      yield* ask(pool, 1, "b", log)
      const exits = Promise.all(pool.slots.map((s) => exitOf(s.worker!)))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(pool.threads(), 0)
      assert.isTrue(pool.closed())
      assert.deepStrictEqual(log.closed, [0, 1])
      assert.strictEqual((yield* Effect.promise(() => exits)).length, 2)
      assert.deepStrictEqual(log.failures, [])
    })
  )
})
