/**
 * The outbox folder's writer (`Transport.layerDir`): one worker thread writes the messages with plain
 * synchronous file calls (DirWriterMain.ts, DirOutbox.ts). Through libuv's pool a message took eight
 * requests (open, write and close of two files, two renames), each a wake-up of a pool thread and a
 * callback on the main thread, which sets a round's pace: up to 0.35 ms of the main thread's CPU per
 * report, and more in the pool (the `round` bench, docs/design.md#outbox-folder-writer). Here the
 * messages given in one turn of the event loop go to the thread in one message and come back in one.
 *
 * Lifecycle as the compose pool's: the thread starts with the first write and is retired after `idle`
 * (30 s) without one, so a worker at rest holds no isolate for it; a thread that dies fails the writes
 * it had (temporary: delivery tries them again) and the next write starts a new one.
 */
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
import { Duration, Effect, type Scope } from "effect"
import type { DirMessage } from "./DirOutbox.js"
import type { DirBatch } from "./DirWriterMain.js"

export interface DirWriter {
  /** Writes the message's pair into `dir`; fails with the file system's error text. */
  readonly write: (dir: string, message: DirMessage) => Effect.Effect<void, string>
  /** Whether the thread runs now (false before the first write and after `idle` without one). */
  readonly running: () => boolean
}

/** How long the writer may have no write before its thread is retired. */
export const defaultDirWriterIdle: Duration.Duration = Duration.seconds(30)

type Done = (error: string | undefined) => void

export const makeDirWriter = (
  options: { readonly idle?: Duration.DurationInput | undefined } = {}
): Effect.Effect<DirWriter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const idleMs = Duration.toMillis(Duration.decode(options.idle ?? defaultDirWriterIdle))
    let worker: Worker | undefined
    let closed = false
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    /** Batches posted and not answered yet, oldest first: the thread answers them in order. */
    const inFlight: Array<Array<Done>> = []
    /** The messages given in this turn of the event loop, by folder; posted when it ends. */
    let queued = new Map<string, { messages: Array<DirMessage>; done: Array<Done> }>()

    const whenIdle = () => {
      if (inFlight.length > 0 || queued.size > 0) return
      clearTimeout(idleTimer)
      // A real timer, not Effect's Clock: it frees real resources, whatever clock delivery runs on.
      idleTimer = setTimeout(() => {
        const w = worker
        if (w === undefined || inFlight.length > 0) return
        worker = undefined
        void w.terminate()
      }, idleMs)
      idleTimer.unref()
    }

    const spawn = (): Worker => {
      const w = ThreadEntry.spawn(import.meta.url, "DirWriterMain")
      w.on("message", (errors: ReadonlyArray<string | undefined>) => {
        const done = inFlight.shift() ?? []
        for (const [i, d] of done.entries()) d(errors[i])
        whenIdle()
      })
      // Retiring clears `worker` first, so that exit is not taken for a failure.
      const fail = (reason: string) => {
        if (worker !== w) return
        worker = undefined
        for (const done of inFlight.splice(0)) for (const d of done) d(reason)
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
        worker ??= spawn()
        inFlight.push(done)
        worker.postMessage({ dir, messages } satisfies DirBatch)
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        clearTimeout(idleTimer)
        const w = worker
        worker = undefined
        for (const done of inFlight.splice(0)) for (const d of done) d("the outbox folder's writer is closed")
        if (w !== undefined) await w.terminate()
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

    return { write, running: () => worker !== undefined }
  })
