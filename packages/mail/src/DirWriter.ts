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
 * Lifecycle as the compose pool's: a thread starts with the first batch given to it, and all are
 * retired after `idle` (30 s) without a write, so a worker at rest holds no isolate for them; a thread
 * that dies fails the writes it had (temporary: delivery tries them again) and the next batch given
 * to it starts a new one.
 */
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
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

interface Slot {
  worker: Worker | undefined
  /** Batches posted to this thread and not answered yet, oldest first: a thread answers in order. */
  readonly inFlight: Array<Array<Done>>
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
    const idleMs = Duration.toMillis(Duration.decode(options.idle ?? defaultDirWriterIdle))
    const slots: Array<Slot> = Array.from(
      { length: Math.max(1, options.threads ?? Math.min(2, availableParallelism())) },
      () => ({ worker: undefined, inFlight: [] })
    )
    let closed = false
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    /** The messages given in this turn of the event loop, by folder; posted when it ends. */
    let queued = new Map<string, { messages: Array<DirMessage>; done: Array<Done> }>()

    const whenIdle = () => {
      if (queued.size > 0 || slots.some((s) => s.inFlight.length > 0)) return
      clearTimeout(idleTimer)
      // A real timer, not Effect's Clock: it frees real resources, whatever clock delivery runs on.
      idleTimer = setTimeout(() => {
        for (const slot of slots) {
          const w = slot.worker
          if (w === undefined || slot.inFlight.length > 0) continue
          slot.worker = undefined
          void w.terminate()
        }
      }, idleMs)
      idleTimer.unref()
    }

    const spawn = (slot: Slot): Worker => {
      const w = ThreadEntry.spawn(import.meta.url, options.entry ?? "DirWriterMain")
      w.on("message", (errors: ReadonlyArray<string | undefined>) => {
        const done = slot.inFlight.shift() ?? []
        for (const [i, d] of done.entries()) d(errors[i])
        whenIdle()
      })
      // Retiring clears `slot.worker` first, so that exit is not taken for a failure.
      const fail = (reason: string) => {
        if (slot.worker !== w) return
        slot.worker = undefined
        for (const done of slot.inFlight.splice(0)) for (const d of done) d(reason)
        whenIdle()
      }
      w.on("error", (e) => fail(`writer thread failed: ${e.message}`))
      w.on("exit", (code) => fail(`writer thread exited with code ${code}`))
      return w
    }

    const flush = () => {
      const batches = queued
      queued = new Map()
      if (closed) {
        for (const { done } of batches.values()) for (const d of done) d("the outbox folder's writer is closed")
        return
      }
      for (const [dir, { messages, done }] of batches) {
        // the thread with the fewest batches in flight: on a disk where creating a file is slow,
        // that kernel time is spread over the cores, as libuv's pool spread it
        const slot = slots.reduce((a, b) => (b.inFlight.length < a.inFlight.length ? b : a))
        slot.worker ??= spawn(slot)
        slot.inFlight.push(done)
        slot.worker.postMessage({ dir, messages } satisfies DirBatch)
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        clearTimeout(idleTimer)
        const workers = slots.flatMap((s) => (s.worker === undefined ? [] : [s.worker]))
        for (const slot of slots) {
          slot.worker = undefined
          for (const done of slot.inFlight.splice(0)) for (const d of done) d("the outbox folder's writer is closed")
        }
        await Promise.all(workers.map((w) => w.terminate()))
      })
    )

    const write = (dir: string, message: DirMessage) =>
      Effect.async<void, string>((resume) => {
        clearTimeout(idleTimer)
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
          whenIdle()
        })
      })

    return { write, threads: () => slots.filter((s) => s.worker !== undefined).length }
  })
