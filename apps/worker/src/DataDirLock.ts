/**
 * One worker per data directory: `<dataDir>/worker.lock`, created with O_EXCL and holding the pid of
 * its owner. Node has no flock/fcntl, so this is the classic pid file: a lock whose pid no longer
 * runs (the worker was killed -9) is stale and taken over; a live pid refuses the start with one line
 * naming it, before the worker opens the store, runs a round or binds its port.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs"
import * as NodePath from "node:path"
import { Data, Effect, type Scope } from "effect"

export class DataDirLocked extends Data.TaggedError("DataDirLocked")<{
  readonly file: string
  readonly pid: number
}> {
  override get message(): string {
    return `another tlsrpt worker (pid ${this.pid}) runs on this data directory (${this.file}); stop it first, or remove the file if that process is not a worker`
  }
}

export class DataDirLockError extends Data.TaggedError("DataDirLockError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot lock the data directory: ${this.file}: ${this.reason}`
  }
}

export const lockFile = (dataDir: string): string => NodePath.join(dataDir, "worker.lock")

const code = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String(e.code) : undefined

/** True unless the pid certainly does not run (EPERM: it runs, as another user). */
const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return code(e) !== "ESRCH"
  }
}

const readPid = (file: string): number | undefined => {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8").trim(), 10)
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

type Attempt =
  | { readonly _tag: "Locked" }
  | { readonly _tag: "Held"; readonly pid: number }
  | { readonly _tag: "Stale"; readonly pid: number | undefined }

const tryCreate = (file: string): Attempt => {
  try {
    const fd = openSync(file, "wx", 0o644)
    try {
      writeSync(fd, `${process.pid}\n`)
    } finally {
      closeSync(fd)
    }
    return { _tag: "Locked" }
  } catch (e) {
    if (code(e) !== "EEXIST") throw e
    const pid = readPid(file)
    // A file without a pid is a lock being written this instant, or the wreck of a crash: only the
    // latter stays so, and a second look after a moment would tell; a live pid is the common case.
    return pid !== undefined && running(pid) ? { _tag: "Held", pid } : { _tag: "Stale", pid }
  }
}

/** Takes the lock for the scope's lifetime; removes the file on release if it is still ours. */
export const acquire = (dataDir: string): Effect.Effect<string, DataDirLocked | DataDirLockError, Scope.Scope> => {
  const file = lockFile(dataDir)
  const take = Effect.gen(function* () {
    for (let round = 0; round < 3; round++) {
      const attempt = yield* Effect.try({
        try: () => {
          mkdirSync(dataDir, { recursive: true })
          return tryCreate(file)
        },
        catch: (e) => new DataDirLockError({ file, reason: e instanceof Error ? e.message : String(e) })
      })
      if (attempt._tag === "Locked") return file
      if (attempt._tag === "Held") return yield* new DataDirLocked({ file, pid: attempt.pid })
      yield* Effect.logWarning(
        `removing a stale worker lock (${attempt.pid === undefined ? "no pid" : `pid ${attempt.pid} is gone`})`
      ).pipe(Effect.annotateLogs({ file }))
      yield* Effect.try({
        try: () => unlinkSync(file),
        catch: (e) => new DataDirLockError({ file, reason: e instanceof Error ? e.message : String(e) })
      }).pipe(
        Effect.catchIf(
          (e) => e.reason.includes("ENOENT"),
          () => Effect.void
        )
      )
    }
    return yield* new DataDirLockError({ file, reason: "the lock file keeps changing; is another worker starting?" })
  })
  return Effect.acquireRelease(take, () =>
    Effect.sync(() => {
      if (readPid(file) === process.pid) {
        try {
          unlinkSync(file)
        } catch {
          // gone already: nothing to release
        }
      }
    })
  )
}
