/**
 * Worker threads that render and DKIM-sign report mails (ComposeWorker.ts), so a report round uses
 * every core: the RSA signature and gzip are the round's heaviest work and need nothing of the main
 * thread's state. A job is plain data (ReportMailRender.ts `ReportJob`; Date, Message-ID and
 * boundary are chosen by the caller from Clock and Random), so pool and in-thread give the same bytes.
 *
 * The jobs given to a thread in one turn of the event loop go to it in one message, and come back in
 * one (a transferred buffer): a round hands over its reports a batch at a time, and a message per
 * report cost the main thread more than the report itself.
 */
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
import { Data, Effect, type Scope } from "effect"
import type { DkimSignerKey, DkimSignerOptions } from "./DkimSigner.js"
import type { ReportJob } from "./ReportMailRender.js"

export class ComposeWorkerError extends Data.TaggedError("ComposeWorkerError")<{ readonly reason: string }> {}

export interface ComposePool {
  readonly size: number
  readonly run: (job: ReportJob) => Effect.Effect<Uint8Array, ComposeWorkerError>
}

/** One batch's answer: each job's end offset in `buffer` (it starts where the previous mail ended), or its error. */
interface Replies {
  readonly replies: ReadonlyArray<
    { readonly id: number; readonly end: number } | { readonly id: number; readonly error: string }
  >
  readonly buffer: ArrayBuffer
}
type Pending = (result: Uint8Array | ComposeWorkerError) => void

/** A pool as large as the machine has cores. */
export const defaultPoolSize = (): number => availableParallelism()

// From dist/ the compiled ComposeWorker.js; from the sources (tests, benchmarks under tsx) the .ts
// through tsx (ThreadEntry).
const newWorker = (workerData: unknown): Worker => ThreadEntry.spawn(import.meta.url, "ComposeWorker", { workerData })

/** A thread that fails this often in a row without finishing a job is not replaced again. */
const MAX_RESTARTS = 3

/** Threads start on the first job and stop after this long without one: a worker at rest holds none. */
const IDLE_MS = 30_000

interface Slot {
  worker: Worker | undefined
  readonly pending: Map<number, Pending>
  /** Jobs not yet posted: they go in one message when the current turn of the event loop ends. */
  queue: Array<{ readonly id: number; readonly job: ReportJob }>
  failures: number
}

export const makeComposePool = (
  size: number,
  init: { readonly keys: ReadonlyArray<DkimSignerKey>; readonly options: DkimSignerOptions }
): Effect.Effect<ComposePool, never, Scope.Scope> =>
  Effect.gen(function* () {
    let nextId = 0
    let closed = false
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    const slots: Array<Slot> = Array.from({ length: Math.max(1, size) }, () => ({
      worker: undefined,
      pending: new Map(),
      queue: [],
      failures: 0
    }))

    // Retiring a thread clears `slot.worker` first, so its exit is not taken for a failure.
    const retire = () => {
      for (const slot of slots) {
        const worker = slot.worker
        if (worker === undefined || slot.pending.size > 0) continue
        slot.worker = undefined
        void worker.terminate()
      }
    }
    const whenIdle = () => {
      if (slots.some((s) => s.pending.size > 0)) return
      clearTimeout(idleTimer)
      idleTimer = setTimeout(retire, IDLE_MS)
      idleTimer.unref()
    }

    const spawn = (slot: Slot): Worker => {
      const worker = newWorker(init)
      worker.on("message", ({ replies, buffer }: Replies) => {
        slot.failures = 0
        let start = 0
        for (const reply of replies) {
          const done = slot.pending.get(reply.id)
          slot.pending.delete(reply.id)
          if ("end" in reply) {
            done?.(new Uint8Array(buffer, start, reply.end - start))
            start = reply.end
          } else done?.(new ComposeWorkerError({ reason: reply.error }))
        }
        whenIdle()
      })
      // A thread that dies fails its jobs (the reporter keeps those keys for the next round) and is
      // replaced, unless the pool is closing or it keeps failing.
      const fail = (reason: string) => {
        if (slot.worker !== worker) return
        for (const done of slot.pending.values()) done(new ComposeWorkerError({ reason }))
        slot.pending.clear()
        slot.queue = []
        slot.failures++
        slot.worker = !closed && slot.failures <= MAX_RESTARTS ? spawn(slot) : undefined
      }
      worker.on("error", (e) => fail(`compose thread failed: ${e.message}`))
      worker.on("exit", (code) => fail(`compose thread exited with code ${code}`))
      return worker
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        clearTimeout(idleTimer)
        const workers = slots.flatMap((s) => (s.worker === undefined ? [] : [s.worker]))
        for (const s of slots) s.worker = undefined
        return Promise.all(workers.map((w) => w.terminate()))
      })
    )

    const flush = (slot: Slot) => {
      const jobs = slot.queue
      slot.queue = []
      if (jobs.length === 0 || closed) return
      if (slot.worker === undefined) slot.worker = spawn(slot)
      slot.worker.postMessage(jobs)
    }

    const run = (job: ReportJob) =>
      Effect.async<Uint8Array, ComposeWorkerError>((resume) => {
        clearTimeout(idleTimer)
        // the least busy thread that has not given up; a retired one starts again
        const usable = slots.filter((s) => s.failures <= MAX_RESTARTS)
        if (closed || usable.length === 0) {
          return resume(Effect.fail(new ComposeWorkerError({ reason: "no compose thread left" })))
        }
        const slot = usable.reduce((a, b) => (b.pending.size < a.pending.size ? b : a))
        const id = nextId++
        slot.pending.set(id, (r) => resume(r instanceof ComposeWorkerError ? Effect.fail(r) : Effect.succeed(r)))
        if (slot.queue.push({ id, job }) === 1) setImmediate(() => flush(slot))
        return Effect.sync(() => {
          slot.pending.delete(id)
          slot.queue = slot.queue.filter((q) => q.id !== id)
          whenIdle()
        })
      })

    return { size: slots.length, run }
  })
