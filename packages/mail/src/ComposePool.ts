/**
 * Worker threads that render and DKIM-sign report mails (ComposeWorker.ts), so a report round uses
 * every core: the RSA signature and gzip are the round's heaviest work and need nothing of the main
 * thread's state. A job is plain data (ReportMailRender.ts `ReportJob`; Date, Message-ID and
 * boundary are chosen by the caller from Clock and Random), so pool and in-thread give the same bytes.
 *
 * A batch (`runAll`) goes to each thread in one message at once, and comes back in one (a transferred
 * buffer): a round hands over its reports a batch at a time, and a message per report cost the main
 * thread more than the report itself. Single jobs given in one turn of the event loop share a message.
 *
 * Lifecycle (docs/design.md#compose-pool): a thread starts with the first job given to its slot and is
 * retired (terminated) once the whole pool has had no job for `idle` (30 s by default), so a worker at
 * rest between daily rounds holds no compose isolate; a thread that dies is not replaced until a job
 * needs it.
 */
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
import { Data, Duration, Effect, type Scope } from "effect"
import type { DkimSignerKey, DkimSignerOptions } from "./DkimSigner.js"
import type { ReportJob } from "./ReportMailRender.js"

export class ComposeWorkerError extends Data.TaggedError("ComposeWorkerError")<{ readonly reason: string }> {}

export interface ComposePool {
  readonly size: number
  readonly run: (job: ReportJob) => Effect.Effect<Uint8Array, ComposeWorkerError>
  /**
   * A batch of jobs in one call (one wait for the caller, however many jobs): each job's mail or
   * error, in job order. The jobs are spread over the threads as `run` would spread them one by one.
   */
  readonly runAll: (jobs: ReadonlyArray<ReportJob>) => Effect.Effect<ReadonlyArray<Uint8Array | ComposeWorkerError>>
  /** Threads running now: 0 before the first job and after `idle` without one. */
  readonly threads: () => number
}

export interface ComposePoolOptions {
  /** How long the pool may have no job before its threads are retired (default `defaultComposeIdle`). */
  readonly idle?: Duration.DurationInput | undefined
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

/**
 * Threads start on the first job and stop after this long without one: a worker at rest holds none
 * (each is a V8 isolate of about 10 MB RSS, loading no Schema). A round's batches follow each other within
 * milliseconds, so 30 s never retires threads mid-round, and a restart costs only a thread's start and
 * its key parse (docs/design.md#compose-pool).
 */
export const defaultComposeIdle: Duration.Duration = Duration.seconds(30)

interface Slot {
  worker: Worker | undefined
  readonly pending: Map<number, Pending>
  /** Jobs not yet posted: they go in one message when the current turn of the event loop ends. */
  queue: Array<{ readonly id: number; readonly job: ReportJob }>
  failures: number
}

export const makeComposePool = (
  size: number,
  init: { readonly keys: ReadonlyArray<DkimSignerKey>; readonly options: DkimSignerOptions },
  options: ComposePoolOptions = {}
): Effect.Effect<ComposePool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const idleMs = Duration.toMillis(Duration.decode(options.idle ?? defaultComposeIdle))
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
      // A real timer, not Effect's Clock: it frees real resources, whatever clock the round runs on.
      idleTimer = setTimeout(retire, idleMs)
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
      // A thread that dies fails its jobs (the reporter keeps those keys for the next round); the
      // slot starts a new one for its next job, unless it keeps failing (MAX_RESTARTS).
      const fail = (reason: string) => {
        if (slot.worker !== worker) return
        for (const done of slot.pending.values()) done(new ComposeWorkerError({ reason }))
        slot.pending.clear()
        slot.queue = []
        slot.failures++
        slot.worker = undefined
        whenIdle()
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

    const runAll = (jobs: ReadonlyArray<ReportJob>) =>
      Effect.async<ReadonlyArray<Uint8Array | ComposeWorkerError>>((resume) => {
        clearTimeout(idleTimer)
        const results: Array<Uint8Array | ComposeWorkerError> = new Array(jobs.length)
        const given: Array<readonly [Slot, number]> = []
        let left = jobs.length
        for (const [i, job] of jobs.entries()) {
          // the least busy thread that has not given up; a retired one starts again
          const usable = slots.filter((s) => s.failures <= MAX_RESTARTS)
          if (closed || usable.length === 0) {
            results[i] = new ComposeWorkerError({ reason: "no compose thread left" })
            left--
            continue
          }
          const slot = usable.reduce((a, b) => (b.pending.size < a.pending.size ? b : a))
          const id = nextId++
          given.push([slot, id])
          slot.pending.set(id, (r) => {
            results[i] = r
            if (--left === 0) resume(Effect.succeed(results))
          })
          if (slot.queue.push({ id, job }) === 1 && jobs.length === 1) setImmediate(() => flush(slot))
        }
        // A batch goes at once. Left to the end of the turn, it waited while the caller's other fibers
        // ran (Effect runs them in one turn): a round's pipelined batches reached the threads as one
        // message, came back together, and main thread and pool took turns instead of overlapping
        // (docs/design.md#compose-pool).
        if (jobs.length > 1) for (const [slot] of given) flush(slot)
        if (left === 0) return resume(Effect.succeed(results))
        return Effect.sync(() => {
          for (const [slot, id] of given) {
            slot.pending.delete(id)
            slot.queue = slot.queue.filter((q) => q.id !== id)
          }
          whenIdle()
        })
      })

    const run = (job: ReportJob) =>
      Effect.flatMap(runAll([job]), ([r]) => (r instanceof ComposeWorkerError ? Effect.fail(r) : Effect.succeed(r!)))

    const threads = () => slots.filter((s) => s.worker !== undefined).length

    return { size: slots.length, run, runAll, threads }
  })
