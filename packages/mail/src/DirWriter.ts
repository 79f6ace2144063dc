/**
 * The outbox folder's writer (`Transport.layerDir`): worker threads (two, or one on a single core)
 * write the messages with plain synchronous file calls (DirWriterMain.ts, DirOutbox.ts). Through
 * libuv's pool a message took eight requests (open, write and close of two files, two renames), each
 * a wake-up of a pool thread and a callback on the main thread, which sets a round's pace: up to
 * 0.35 ms of the main thread's CPU per report, and more in the pool (the `round` bench,
 * docs/design.md#outbox-folder-writer). Here the messages given in one turn of the event loop go to a
 * thread in one message and come back in one; each batch goes to the thread with fewer in flight, so
 * a disk where creating a file is slow has that kernel time spread over two cores.
 *
 * Lifecycle as the compose pool's (`ThreadSlots`, docs/design.md#thread-slots): a thread starts with
 * the first batch given to it, and all are retired after `idle` (30 s) without a write, so a worker at
 * rest holds no isolate for them; a thread that dies fails the writes it had (temporary: delivery
 * tries them again) and the next batch given to it starts a new one.
 */
import { availableParallelism } from "node:os"
import { ThreadEntry, ThreadSlots } from "@tlsrpt/core"
import { Duration, Effect, type Scope } from "effect"
import type { DirMessage } from "./DirOutbox.js"
import type { DirBatch } from "./DirWriterMain.js"

export interface DirWriter {
  /** Writes the message's pair into `dir`; fails with the file system's error text. */
  readonly write: (dir: string, message: DirMessage) => Effect.Effect<void, string>
  /** Threads running now: 0 before the first write and after `idle` without one. */
  readonly threads: () => number
}

/** How long the writer may have no write before its thread is retired. */
export const defaultDirWriterIdle: Duration.Duration = Duration.seconds(30)

type Done = (error: string | undefined) => void

/** Batches posted to a slot's thread and not answered yet, oldest first: a thread answers in order. */
type InFlight = Array<Array<Done>>

const CLOSED = "the outbox folder's writer is closed"

/** Fails every write a slot's thread had (it died, or the writer is closing). */
const failAll = (inFlight: InFlight, reason: string) => {
  for (const done of inFlight.splice(0)) for (const d of done) d(reason)
}

export const makeDirWriter = (
  options: {
    readonly idle?: Duration.DurationInput | undefined
    /** Threads (default as many as the machine has cores, at most 2). */
    readonly threads?: number | undefined
    /** The threads' entry module beside this one (default `DirWriterMain`; tests start a failing one). */
    readonly entry?: string | undefined
  } = {}
): Effect.Effect<DirWriter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pool = yield* ThreadSlots.make<InFlight, ReadonlyArray<string | undefined>>({
      size: options.threads ?? Math.min(2, availableParallelism()),
      idle: options.idle ?? defaultDirWriterIdle,
      state: () => [],
      busy: (inFlight) => inFlight.length > 0,
      start: () => ThreadEntry.spawn(import.meta.url, options.entry ?? "DirWriterMain"),
      name: "writer thread",
      onMessage: ({ state }, errors) => {
        const done = state.shift() ?? []
        for (const [i, d] of done.entries()) d(errors[i])
      },
      onFail: ({ state }, reason) => failAll(state, reason),
      onClose: ({ state }) => failAll(state, CLOSED)
    })
    /** The messages given in this turn of the event loop, by folder; posted when it ends. */
    let queued = new Map<string, { messages: Array<DirMessage>; done: Array<Done> }>()

    const flush = () => {
      const batches = queued
      queued = new Map()
      if (pool.closed()) {
        for (const { done } of batches.values()) for (const d of done) d(CLOSED)
        return
      }
      for (const [dir, { messages, done }] of batches) {
        // the thread with the fewest batches in flight: on a disk where creating a file is slow,
        // that kernel time is spread over the cores, as libuv's pool spread it
        const slot = pool.slots.reduce((a, b) => (b.state.length < a.state.length ? b : a))
        const worker = pool.worker(slot)
        slot.state.push(done)
        worker.postMessage({ dir, messages } satisfies DirBatch)
      }
    }

    const write = (dir: string, message: DirMessage) =>
      Effect.async<void, string>((resume) => {
        pool.working()
        let settled = false
        const done: Done = (error) => {
          if (settled) return
          settled = true
          resume(error === undefined ? Effect.void : Effect.fail(error))
        }
        if (queued.size === 0) setImmediate(flush)
        let batch = queued.get(dir)
        if (batch === undefined) {
          batch = { messages: [], done: [] }
          queued.set(dir, batch)
        }
        batch.messages.push(message)
        batch.done.push(done)
        // Interrupted: a message not posted yet is taken back; one posted is written all the same,
        // and its answer is ignored (a later attempt writes the same names again).
        return Effect.sync(() => {
          settled = true
          const b = queued.get(dir)
          const i = b?.done.indexOf(done) ?? -1
          if (b !== undefined && i >= 0) {
            b.messages.splice(i, 1)
            b.done.splice(i, 1)
            if (b.messages.length === 0) queued.delete(dir)
          }
          pool.settled()
        })
      })

    return { write, threads: pool.threads }
  })
