/**
 * Runs the real `tlsrpt` bin as a child process, as the README does from the repository root
 * (`node --conditions=source --import tsx apps/worker/src/main.ts …`), with absolute paths so the
 * working directory can be a temporary one.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, type Scope } from "effect"

const here = NodePath.dirname(fileURLToPath(import.meta.url))
export const MAIN = NodePath.resolve(here, "../src/main.ts")
export const REPO_ROOT = NodePath.resolve(here, "../../..")
/** tsx's loader, resolved from the repository root (where tsx is installed). */
export const TSX = createRequire(NodePath.join(REPO_ROOT, "package.json")).resolve("tsx")

export interface BinResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface BinOptions {
  readonly cwd: string
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly stdin?: string | undefined
  /** Run as this user and group (only when the test runs as root: to meet file permissions as others do). */
  readonly uid?: number | undefined
  readonly gid?: number | undefined
}

/** A clean environment: no TLSRPT_* from the caller's shell leaks into a test. */
const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("TLSRPT_")) env[k] = v
  return env
}

export const spawnBin = (args: ReadonlyArray<string>, options: BinOptions): ChildProcess =>
  spawn(process.execPath, ["--conditions=source", "--import", TSX, MAIN, ...args], {
    cwd: options.cwd,
    env: { ...baseEnv(), ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid })
  })

/** Runs the bin to completion. */
export const runBin = (args: ReadonlyArray<string>, options: BinOptions): Effect.Effect<BinResult> =>
  Effect.async<BinResult>((resume) => {
    const child = spawnBin(args, options)
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d
    })
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d
    })
    child.on("close", (code, signal) => resume(Effect.succeed({ code, signal, stdout, stderr })))
    child.stdin!.end(options.stdin ?? "")
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

export interface RunningBin {
  readonly child: ChildProcess
  /** Everything written to stdout so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  /** Waits for a stdout line matching `pattern`; returns the match. */
  readonly waitFor: (pattern: RegExp) => Effect.Effect<RegExpMatchArray>
  /** Waits for the exit. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** Starts a long-running bin (the worker), killed with SIGKILL when the scope closes if still running. */
export const startBin = (
  args: ReadonlyArray<string>,
  options: BinOptions
): Effect.Effect<RunningBin, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawnBin(args, options)
      child.stdin!.end()
      let stdout = ""
      let stderr = ""
      const listeners = new Set<() => void>()
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        stdout += d
        for (const l of listeners) l()
      })
      child.stderr!.setEncoding("utf8").on("data", (d: string) => {
        stderr += d
      })
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on("exit", (code, signal) => {
          for (const l of listeners) l()
          resolve({ code, signal })
        })
      )
      const waitFor = (pattern: RegExp) =>
        Effect.async<RegExpMatchArray>((resume) => {
          const check = () => {
            const m = stdout.match(pattern)
            if (m !== null) {
              listeners.delete(check)
              resume(Effect.succeed(m))
            } else if (child.exitCode !== null || child.signalCode !== null) {
              listeners.delete(check)
              resume(Effect.dieMessage(`the bin exited before printing ${pattern}: ${stdout}\n${stderr}`))
            }
          }
          listeners.add(check)
          check()
          return Effect.sync(() => listeners.delete(check))
        })
      return {
        child,
        stdout: () => stdout,
        stderr: () => stderr,
        waitFor,
        exited: Effect.promise(() => exit)
      } satisfies RunningBin
    }),
    (bin) =>
      Effect.sync(() => {
        if (bin.child.exitCode === null && bin.child.signalCode === null) bin.child.kill("SIGKILL")
      })
  )
