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
 * Lifecycle (`ThreadSlots`, docs/design.md#thread-slots): a thread starts with the first job given to
 * its slot and is retired (terminated) once the whole pool has had no job for `idle` (30 s by
 * default), so a worker at rest between daily rounds holds no compose isolate; a thread that dies is
 * not replaced until a job needs it.
 */
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import { ThreadEntry, ThreadSlots } from "@tlsrpt/core"
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

interface SlotState {
  readonly pending: Map<number, Pending>
  /** Jobs not yet posted: they go in one message when the current turn of the event loop ends. */
  queue: Array<{ readonly id: number; readonly job: ReportJob }>
  failures: number
}
type Slot = ThreadSlots.Slot<SlotState>

export const makeComposePool = (
  size: number,
  init: { readonly keys: ReadonlyArray<DkimSignerKey>; readonly options: DkimSignerOptions },
  options: ComposePoolOptions = {}
): Effect.Effect<ComposePool, never, Scope.Scope> =>
  Effect.gen(function* () {
    let nextId = 0
    const pool = yield* ThreadSlots.make<SlotState, Replies>({
      size,
      idle: options.idle ?? defaultComposeIdle,
      state: () => ({ pending: new Map(), queue: [], failures: 0 }),
      busy: (state) => state.pending.size > 0,
      start: () => newWorker(init),
      name: "compose thread",
      onMessage: ({ state }, { replies, buffer }) => {
        state.failures = 0
        let start = 0
        for (const reply of replies) {
          const done = state.pending.get(reply.id)
          state.pending.delete(reply.id)
          if ("end" in reply) {
            done?.(new Uint8Array(buffer, start, reply.end - start))
            start = reply.end
          } else done?.(new ComposeWorkerError({ reason: reply.error }))
        }
      },
      // A thread that dies fails its jobs (the reporter keeps those keys for the next round); the
      // slot starts a new one for its next job, unless it keeps failing (MAX_RESTARTS).
      onFail: ({ state }, reason) => {
        for (const done of state.pending.values()) done(new ComposeWorkerError({ reason }))
        state.pending.clear()
        state.queue = []
        state.failures++
      }
    })

    const flush = (slot: Slot) => {
      const jobs = slot.state.queue
      slot.state.queue = []
      if (jobs.length === 0 || pool.closed()) return
      pool.worker(slot).postMessage(jobs)
    }

    const runAll = (jobs: ReadonlyArray<ReportJob>) =>
      Effect.async<ReadonlyArray<Uint8Array | ComposeWorkerError>>((resume) => {
        pool.working()
        const results: Array<Uint8Array | ComposeWorkerError> = new Array(jobs.length)
        const given: Array<readonly [Slot, number]> = []
        let left = jobs.length
        for (const [i, job] of jobs.entries()) {
          // the least busy thread that has not given up; a retired one starts again
          const usable = pool.slots.filter((s) => s.state.failures <= MAX_RESTARTS)
          if (pool.closed() || usable.length === 0) {
            results[i] = new ComposeWorkerError({ reason: "no compose thread left" })
            left--
            continue
          }
          const slot = usable.reduce((a, b) => (b.state.pending.size < a.state.pending.size ? b : a))
          const id = nextId++
          given.push([slot, id])
          slot.state.pending.set(id, (r) => {
            results[i] = r
            if (--left === 0) resume(Effect.succeed(results))
          })
          if (slot.state.queue.push({ id, job }) === 1 && jobs.length === 1) setImmediate(() => flush(slot))
        }
        // A batch goes at once. Left to the end of the turn, it waited while the caller's other fibers
        // ran (Effect runs them in one turn): a round's pipelined batches reached the threads as one
        // message, came back together, and main thread and pool took turns instead of overlapping
        // (docs/design.md#compose-pool).
        if (jobs.length > 1) for (const [slot] of given) flush(slot)
        if (left === 0) return resume(Effect.succeed(results))
        return Effect.sync(() => {
          for (const [{ state }, id] of given) {
            state.pending.delete(id)
            state.queue = state.queue.filter((q) => q.id !== id)
          }
          pool.settled()
        })
      })

    const run = (job: ReportJob) =>
      Effect.flatMap(runAll([job]), ([r]) => (r instanceof ComposeWorkerError ? Effect.fail(r) : Effect.succeed(r!)))

    return { size: pool.slots.length, run, runAll, threads: pool.threads }
  })
