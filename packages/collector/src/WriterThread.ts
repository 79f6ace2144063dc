/**
 * The collector's SQLite writes on a worker thread with its own connection to the file (WAL), so the
 * thread that aggregates (and reads the datagram socket) never waits for a write: of a flush it only
 * pays for encoding the batch. issue 15 measured ~11 µs of SQLite work per row on the aggregating
 * thread; here that work runs on the other core.
 *
 * - A batch crosses as ONE buffer in shared memory (the rows as JSON, `encodeBatch`), not a cloned
 *   object graph (structured clone of 10,000 rows costs more than the JSON and copies twice). The Collector
 *   encodes its rows one by one into such a buffer (`BatchEncoder`) and hands it to `BatchWriter`, so
 *   a batch never exists as an object graph on the aggregating thread either.
 * - The thread runs the store's own `addResults` (`Store.layer` on the same file): one
 *   transaction per batch, the same merge (docs/design.md#row-merge), the flush's time as the rows'.
 *   It decodes and adds a batch piece by piece (`PIECE_ROWS`) inside that one transaction.
 * - Its errors come back as the same `StoreError` (operation and reason), so the Collector keeps the
 *   batch and retries it as before.
 * - A thread that dies (crash, out of memory) is started again and the batch sent again: SQLite rolled
 *   its open transaction back. After `MAX_RESTARTS` deaths in a row on one batch the write fails with a
 *   StoreError, and the Collector retries later (with backoff); nothing is dropped. A death between
 *   the commit and the reply would add the batch twice: the same window as a process killed right
 *   after a commit in the single-threaded store.
 * - Waiting for a reply is uninterruptible: the write has been handed over, and an interrupted
 *   waiter would make the Collector write the batch a second time.
 * - The thread starts with the first batch and stops after `IDLE_MS` without one: a worker at rest
 *   holds no thread (docs: the `idle` benchmark).
 */
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
import { type NewResultRow, ResultStore, StoreError } from "@tlsrpt/store"
import { Clock, Context, Effect, Layer, type Scope } from "effect"

/** What the thread is started with (`workerData`). */
export interface ThreadInit {
  readonly filename: string
}

/** One batch: `now` is the flush's time (the main thread's Clock), `batch` from `encodeBatch`. */
export interface Request {
  readonly id: number
  readonly now: number
  readonly batch: Uint8Array
}

export type Reply =
  | { readonly id: number }
  | { readonly id: number; readonly operation: string; readonly error: string }

export interface Options {
  /** The SQLite file (not `:memory:`: a thread's connection would open a database of its own). */
  readonly filename: string
  /** How the thread is started; tests start one that crashes. Default: WriterThreadMain. */
  readonly spawn?: ((init: ThreadInit) => Worker) | undefined
}

export interface WriterThread {
  /** Adds the rows in the thread (`ResultStore.addResults`, one transaction). */
  readonly write: (rows: ReadonlyArray<NewResultRow>) => Effect.Effect<void, StoreError>
  /** The same for rows already encoded (`encodeBatch`, `BatchEncoder`); the buffer is not detached. */
  readonly writeBatch: (batch: Uint8Array) => Effect.Effect<void, StoreError>
  /** Threads started so far (the first one included). */
  readonly started: () => number
}

/** Deaths in a row on one batch before the write fails (and the Collector retries it later). */
const MAX_RESTARTS = 3

/** A thread without a batch for this long is stopped. */
const IDLE_MS = 60_000

/**
 * Builds the `encodeBatch` form of rows added one at a time, each row's JSON encoded straight into
 * a growing byte buffer in shared memory: no array of the rows and no JSON string of the whole
 * batch. `finish` hands out a view of that buffer, which the writer thread reads where it is: a
 * batch is never copied (a 10,000-row batch is ~5 MB; a copy to finish and another to transfer
 * were two more at every flush, and freeing them raised glibc's mmap threshold so that later
 * buffers fragmented the heap). Reusable: the buffer stays grown for the next batch.
 */
export class BatchEncoder {
  private bytes = takeSpare() ?? shared(SMALL)
  private length = 0
  // Rows are joined into a string of up to CHUNK characters before they are encoded: one
  // `encodeInto` a row costs more than the row's JSON.
  private pending = "["
  private rows = 0

  /** Adds one row's JSON (`JSON.stringify(row)`, or `ResultBuffer.drainJson`). */
  add(json: string): void {
    const n = this.rows++
    this.pending =
      n === 0
        ? `${this.pending}${json}`
        : n % PIECE_ROWS === 0
          ? `${this.pending},\n${json}`
          : `${this.pending},${json}`
    if (this.pending.length >= CHUNK) this.encodePending()
  }

  /**
   * The batch: a view of the encoder's shared buffer, valid until the next `add`. The Collector
   * starts its next batch only once this one is written (`Collector.ts` takeBuffer runs after the
   * batch in flight succeeded), so a retried batch still reads its own bytes.
   */
  finish(): Uint8Array {
    this.pending += "]"
    this.encodePending()
    const batch = new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, this.length)
    this.length = 0
    this.pending = "["
    this.rows = 0
    return batch
  }

  /**
   * Puts back a small buffer for a grown one: a collector at rest keeps no batch-sized shared buffer
   * (docs/design.md#thread-memory). Only once the last batch is written (none in flight or kept for
   * a retry: `finish`'s view is of this buffer), which the caller knows.
   */
  shrink(): void {
    if (this.rows > 0 || this.bytes.length <= SMALL) return
    this.bytes = shared(SMALL)
  }

  /**
   * Gives the buffer back for the process's next encoder (a collector that stops and another that
   * starts: a restarted worker layer, the benches' runs), which would otherwise grow a buffer of its
   * own while this one waits for a garbage collection: ~50 MB more at the peak. Only once its last
   * batch is written; the encoder is not used again.
   */
  release(): void {
    if (spare === undefined || spare.length < this.bytes.length) spare = this.bytes
    this.length = 0
    this.pending = "["
    this.rows = 0
  }

  private encodePending(): void {
    // UTF-8 takes at most 3 bytes a UTF-16 unit.
    const need = this.length + this.pending.length * 3
    if (need > this.bytes.length) {
      const grown = shared(Math.max(need, this.bytes.length * 2))
      this.bytes.copy(grown, 0, 0, this.length)
      this.bytes = grown
    }
    // Buffer#write: node's fastest path from a string to UTF-8 bytes (TextEncoder#encodeInto took 4×).
    this.length += this.bytes.write(this.pending, this.length, "utf8")
    this.pending = ""
  }
}

const shared = (bytes: number): Buffer => Buffer.from(new SharedArrayBuffer(bytes))

/** A new encoder's buffer, grown to fit the largest batch. */
const SMALL = 1 << 16

/** The buffer of the last encoder released, for the next one (`BatchEncoder.release`). */
let spare: Buffer | undefined

const takeSpare = (): Buffer | undefined => {
  const b = spare
  spare = undefined
  return b
}

const CHUNK = 1 << 15

/**
 * Rows per piece of a batch. The encoder starts a piece every PIECE_ROWS rows with a newline (JSON
 * whitespace: the batch is still one JSON array; `JSON.stringify` never writes a raw newline), and
 * the thread decodes and writes one piece at a time (`pieces`), so its heap holds one piece's rows,
 * not a whole batch's (a final flush of 40,000 keys is 21 MB of JSON: decoded at once the thread's
 * heap grew to ~160 MB; in pieces of 2,048 rows to ~145 MB, of 512 rows to ~90 MB, 32 MB live).
 * A piece of 512 rows (~280 KB of text) is one `addResults` call, a savepoint in the batch's transaction.
 */
export const PIECE_ROWS = 512

/**
 * The pieces of an `encodeBatch` batch, each as the text of a JSON array of its rows, one at a
 * time. A batch without newlines is one piece.
 */
export function* pieces(batch: Uint8Array): Generator<string> {
  const decoder = new TextDecoder()
  for (let start = 0; start < batch.length; ) {
    const newline = batch.indexOf(0x0a, start)
    const end = newline === -1 ? batch.length : newline
    const text = decoder.decode(batch.subarray(start, end))
    // "[a,b," first, "c,d," between, "e,f]" last: without the array's bracket and the separator.
    const rows = text.slice(start === 0 ? 1 : 0, -1)
    if (rows.length > 0) yield `[${rows}]`
    start = end + 1
  }
}

/** The rows as UTF-8 JSON in shared memory (`BatchEncoder.finish` of an encoder of their own). Domains keep both forms. */
export const encodeBatch = (rows: ReadonlyArray<NewResultRow>): Uint8Array => {
  const e = new BatchEncoder()
  for (const row of rows) e.add(JSON.stringify(row))
  return e.finish()
}

/**
 * The writer thread's batch port, beside the `ResultStore` of `layer`: the Collector hands it its
 * batches already encoded (`BatchEncoder`).
 */
export class BatchWriter extends Context.Tag("@tlsrpt/collector/BatchWriter")<
  BatchWriter,
  {
    /** `ResultStore.addResults` of the encoded rows, in the thread (one transaction). */
    readonly write: (batch: Uint8Array) => Effect.Effect<void, StoreError>
  }
>() {}

// A batch is decoded a piece (PIECE_ROWS rows) at a time: a 1 MB semi-space keeps the thread's young
// generation at 2 MB instead of the main thread's 8 (docs/design.md#thread-memory).
const defaultSpawn = (init: ThreadInit): Worker =>
  ThreadEntry.spawn(import.meta.url, "WriterThreadMain", { workerData: init, semiSpaceMb: 1 })

interface Job {
  readonly id: number
  readonly now: number
  readonly batch: Uint8Array
  deaths: number
  readonly done: (error: StoreError | undefined) => void
}

export const make = (options: Options): Effect.Effect<WriterThread, never, Scope.Scope> =>
  Effect.gen(function* () {
    const spawn = options.spawn ?? defaultSpawn
    const lock = yield* Effect.makeSemaphore(1)
    let worker: Worker | undefined
    let job: Job | undefined
    let nextId = 0
    let started = 0
    let closed = false
    let idleTimer: ReturnType<typeof setTimeout> | undefined

    // The job keeps its batch to send again to a restarted thread. A batch in shared memory
    // (`BatchEncoder`) is posted as it is: the thread reads the same bytes, no copy. Any other is
    // copied and the copy transferred.
    const send = (w: Worker, j: Job) => {
      if (j.batch.buffer instanceof SharedArrayBuffer) {
        const request: Request = { id: j.id, now: j.now, batch: j.batch }
        return w.postMessage(request)
      }
      const batch = j.batch.slice()
      const request: Request = { id: j.id, now: j.now, batch }
      w.postMessage(request, [batch.buffer as ArrayBuffer])
    }

    const finish = (error: StoreError | undefined) => {
      const j = job
      job = undefined
      worker?.unref()
      clearTimeout(idleTimer)
      idleTimer = setTimeout(retire, IDLE_MS)
      idleTimer.unref()
      j?.done(error)
    }

    // Retiring clears `worker` first, so its exit is not taken for a death.
    const retire = () => {
      const w = worker
      if (w === undefined || job !== undefined) return
      worker = undefined
      void w.terminate()
    }

    const start = (): Worker => {
      const w = spawn({ filename: options.filename })
      started++
      w.on("message", (reply: Reply) => {
        if (worker !== w || job === undefined || reply.id !== job.id) return
        finish(
          "error" in reply ? new StoreError({ operation: reply.operation, cause: new Error(reply.error) }) : undefined
        )
      })
      const died = (reason: string) => {
        if (worker !== w) return
        worker = undefined
        const j = job
        if (j === undefined) return
        j.deaths++
        if (closed || j.deaths > MAX_RESTARTS)
          return finish(new StoreError({ operation: "addResults", cause: new Error(`writer thread ${reason}`) }))
        try {
          worker = start()
        } catch (cause) {
          return finish(new StoreError({ operation: "addResults", cause }))
        }
        worker.ref()
        send(worker, j)
      }
      w.on("error", (e) => died(`failed: ${e.message}`))
      w.on("exit", (code) => died(`exited with code ${code}`))
      return w
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        clearTimeout(idleTimer)
        const w = worker
        worker = undefined
        if (w !== undefined) await w.terminate()
      })
    )

    const writeBatch = (batch: Uint8Array): Effect.Effect<void, StoreError> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.async<void, StoreError>((resume) => {
          if (closed) return resume(Effect.dieMessage("WriterThread used after its scope was closed"))
          clearTimeout(idleTimer)
          job = {
            id: nextId++,
            now,
            batch,
            deaths: 0,
            done: (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
          }
          try {
            if (worker === undefined) worker = start()
          } catch (cause) {
            job = undefined
            return resume(Effect.fail(new StoreError({ operation: "addResults", cause })))
          }
          worker.ref()
          send(worker, job)
        })
      ).pipe(Effect.uninterruptible, lock.withPermits(1))

    return {
      write: (rows) => Effect.suspend(() => writeBatch(encodeBatch(rows))),
      writeBatch,
      started: () => started
    }
  })

/**
 * The given `ResultStore` with `addResults` run in a writer thread on its own connection to
 * `filename` (the same file); every other method is the given store's. With it, the `BatchWriter`
 * of the same thread. For the Collector of a worker whose database is a file.
 */
export const layer = (options: Options): Layer.Layer<ResultStore | BatchWriter, never, ResultStore> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const store = yield* ResultStore
      const thread = yield* make(options)
      return Context.make(ResultStore, {
        ...store,
        addResults: Effect.fn("ResultStore.addResults")((rows) => thread.write(rows))
      }).pipe(Context.add(BatchWriter, { write: thread.writeBatch }))
    })
  )
