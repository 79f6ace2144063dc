/**
 * Entry of the collector's writer thread (WriterThread.ts): opens the SQLite file with its own
 * connection (`Store.layer`, WAL) and runs `addResults` for each batch, one at a time in the
 * order received. A batch arrives as a buffer of JSON in shared memory (WriterThread.ts `encodeBatch`)
 * with the flush's time, which becomes the rows' `created`/`updated` as if the main thread had
 * written them (its Clock may be a TestClock).
 */
import { parentPort, workerData } from "node:worker_threads"
import { type NewResultRow, ResultStore, Store, StoreError } from "@tlsrpt/store"
import { Cause, Clock, type Context, Effect, Exit, Layer, Scope } from "effect"
import { pieces, type Reply, type Request, type ThreadInit } from "./WriterThread.js"

const init = workerData as ThreadInit

/** A clock that says `millis` (a flush's time); `sleep` is the live one. */
const at = (millis: number): Clock.Clock => {
  const live = Clock.make()
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => millis,
    currentTimeMillis: Effect.succeed(millis),
    unsafeCurrentTimeNanos: () => BigInt(millis) * 1_000_000n,
    currentTimeNanos: Effect.succeed(BigInt(millis) * 1_000_000n),
    sleep: (d) => live.sleep(d)
  }
}

const scope = Effect.runSync(Scope.make())
type Opened = Layer.Layer.Success<ReturnType<typeof Store.layer>>
// Opened once, on the first batch; a failed open is reported with that batch and tried again with the next.
let store: Promise<Context.Context<Opened>> | undefined
const open = () =>
  Effect.runPromiseExit(Layer.buildWithScope(Store.layer({ filename: init.filename }), scope)).then((exit) =>
    Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
  )

/**
 * The batch piece by piece (`pieces`: one piece's rows decoded at a time), all in one transaction:
 * the batch is written whole or not at all, so a batch sent again (a restarted thread, a retry) is
 * never counted twice.
 */
const addBatch = (batch: Uint8Array) =>
  Store.transaction(
    Effect.gen(function* () {
      const results = yield* ResultStore
      for (const piece of pieces(batch)) yield* results.addResults(JSON.parse(piece) as ReadonlyArray<NewResultRow>)
    })
  )

const reply = (r: Reply) => parentPort?.postMessage(r)

// The reason without StoreError's own prefix: the main thread wraps it in a StoreError again.
const failure = (id: number, e: unknown): Reply => {
  if (!(e instanceof StoreError))
    return { id, operation: "addResults", error: e instanceof Error ? e.message : String(e) }
  const prefix = `result store: ${e.operation} failed: `
  return {
    id,
    operation: e.operation,
    error: e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message
  }
}

const write = async (request: Request): Promise<void> => {
  try {
    if (store === undefined) store = open()
    const s = await store.catch((e) => {
      store = undefined
      throw e
    })
    const exit = await Effect.runPromiseExit(
      addBatch(request.batch).pipe(Effect.provide(s), Effect.withClock(at(request.now)))
    )
    reply(Exit.isSuccess(exit) ? { id: request.id } : failure(request.id, Cause.squash(exit.cause)))
  } catch (e) {
    reply(failure(request.id, e))
  }
}

// One batch at a time, in the order sent.
let queue = Promise.resolve()
parentPort?.on("message", (request: Request) => {
  queue = queue.then(() => write(request))
})
parentPort?.on("close", () => void Effect.runPromise(Scope.close(scope, Exit.void)))
