/**
 * The `dir` transport's file writes on a thread of their own (DirWriterThread.ts). Each message is
 * two files, each written to a temporary name and renamed: through node:fs's asynchronous calls that
 * is eight hand-offs to the libuv pool per message, and on a busy 2-core machine the main thread lost
 * more time in those hand-offs (and the pool's four threads in contending for the one folder) than
 * the writes take. The thread does them with synchronous calls, one message after the other, and the
 * messages handed over in one turn of the event loop go in one message and come back in one reply
 * (README "The round's main thread").
 *
 * The thread starts with the first write and is retired after `idle` without one (its isolate is a
 * few MB); one that dies fails its writes (temporary failures, retried by the delivery) and the next
 * write starts another.
 */
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
import { Duration, Effect, type Scope } from "effect"

/** One file of a message: its name in the folder and its bytes (a string is written as UTF-8). */
export interface DirFile {
  readonly name: string
  readonly data: Uint8Array | string
}
interface DirWrite {
  readonly id: number
  readonly dir: string
  readonly files: ReadonlyArray<DirFile>
}
/**
 * What goes to the thread for a batch: every file's bytes in one transferred buffer, each file
 * ending at `end` (starting where the one before ended). Structured clone would copy the whole
 * ArrayBuffer behind each view (a pooled Buffer's 8 kB, or a SQLite row's), per file.
 */
export interface DirBatch {
  readonly writes: ReadonlyArray<{
    readonly id: number
    readonly dir: string
    readonly files: ReadonlyArray<{ readonly name: string; readonly end: number }>
  }>
  readonly buffer: ArrayBuffer
}
export interface DirWriteReply {
  readonly id: number
  readonly error?: string
}

export interface DirWriter {
  /** Writes the files in order, each atomically; fails with the reason (an fs error's message). */
  readonly write: (dir: string, files: ReadonlyArray<DirFile>) => Effect.Effect<void, string>
  /** 1 while the thread runs, 0 before the first write and after `idle` without one. */
  readonly threads: () => number
}

export const defaultDirWriterIdle: Duration.Duration = Duration.seconds(30)

export const makeDirWriter = (
  options: { readonly idle?: Duration.DurationInput | undefined } = {}
): Effect.Effect<DirWriter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const idleMs = Duration.toMillis(Duration.decode(options.idle ?? defaultDirWriterIdle))
    let worker: Worker | undefined
    let closed = false
    let nextId = 0
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    let queue: Array<DirWrite> = []
    const pending = new Map<number, (error: string | undefined) => void>()

    const whenIdle = () => {
      if (pending.size > 0) return
      clearTimeout(idleTimer)
      // a real timer: it frees a real thread, whatever clock the caller runs on
      idleTimer = setTimeout(() => {
        const w = worker
        if (w === undefined || pending.size > 0) return
        worker = undefined
        void w.terminate()
      }, idleMs)
      idleTimer.unref()
    }

    const spawn = (): Worker => {
      const w = ThreadEntry.spawn(import.meta.url, "DirWriterThread", { semiSpaceMb: 1 })
      w.on("message", (replies: ReadonlyArray<DirWriteReply>) => {
        for (const reply of replies) {
          const done = pending.get(reply.id)
          pending.delete(reply.id)
          done?.(reply.error)
        }
        whenIdle()
      })
      const fail = (reason: string) => {
        if (worker !== w) return
        worker = undefined
        for (const done of pending.values()) done(reason)
        pending.clear()
        whenIdle()
      }
      w.on("error", (e) => fail(`writer thread failed: ${e.message}`))
      w.on("exit", (code) => fail(`writer thread exited with code ${code}`))
      return w
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        clearTimeout(idleTimer)
        const w = worker
        worker = undefined
        for (const done of pending.values()) done("the dir transport was closed")
        pending.clear()
        if (w !== undefined) await w.terminate()
      })
    )

    const flush = () => {
      const jobs = queue
      queue = []
      if (jobs.length === 0 || closed) return
      if (worker === undefined) worker = spawn()
      let size = 0
      for (const job of jobs)
        for (const f of job.files) size += typeof f.data === "string" ? Buffer.byteLength(f.data) : f.data.byteLength
      const buffer = new ArrayBuffer(size)
      const out = Buffer.from(buffer)
      let at = 0
      const writes = jobs.map(({ id, dir, files }) => ({
        id,
        dir,
        files: files.map(({ name, data }) => {
          if (typeof data === "string") at += out.write(data, at)
          else {
            out.set(data, at)
            at += data.byteLength
          }
          return { name, end: at }
        })
      }))
      worker.postMessage({ writes, buffer } satisfies DirBatch, [buffer])
    }

    const write = (dir: string, files: ReadonlyArray<DirFile>) =>
      Effect.async<void, string>((resume) => {
        if (closed) return resume(Effect.fail("the dir transport was closed"))
        clearTimeout(idleTimer)
        const id = nextId++
        pending.set(id, (error) => resume(error === undefined ? Effect.void : Effect.fail(error)))
        if (queue.push({ id, dir, files }) === 1) setImmediate(flush)
        // Interrupted: the write may still happen (the file appears, as after a crash mid-attempt);
        // only the answer is dropped.
        return Effect.sync(() => {
          pending.delete(id)
          queue = queue.filter((q) => q.id !== id)
          whenIdle()
        })
      })

    return { write, threads: () => (worker === undefined ? 0 : 1) }
  })
