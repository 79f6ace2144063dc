/**
 * Starts a worker thread on a module next to the caller, from the compiled `.js` or, when the caller
 * itself runs from its TypeScript sources (tests, benchmarks under tsx), on the `.ts` through tsx
 * registered inside the thread: on Node 20 loader hooks are not inherited by worker threads. The
 * `source` export condition is passed on so the thread resolves workspace packages as its parent does.
 * From `.js` the thread inherits the process's flags, `--max-old-space-size` included.
 */
import { createRequire } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { setFlagsFromString } from "node:v8"
import { Worker, type WorkerOptions } from "node:worker_threads"

export interface SpawnOptions extends WorkerOptions {
  /**
   * The thread's V8 semi-space size in MB (its young generation is two of them), for a thread that
   * keeps few short-lived objects. V8 flags are process-wide and win over `resourceLimits`, so under
   * the product's `--max-semi-space-size=4` every thread would otherwise reserve the main thread's
   * 8 MB young generation (docs/design.md#thread-memory). Default: the process's.
   */
  readonly semiSpaceMb?: number | undefined
}

/** The process's own `--max-semi-space-size` (0: V8's default), restored once a thread's heap exists. */
const processSemiSpace = (): number => {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  let mb = 0
  for (const f of flags) {
    const m = /^--max[-_]semi[-_]space[-_]size=(\d+)$/.exec(f)
    if (m !== null) mb = Number(m[1])
  }
  return mb
}

// Threads being started with a semi-space of their own; the process's flag is back once none is.
let starting = 0

/**
 * `callerUrl`: the caller's `import.meta.url`; `name`: the entry module's base name without extension
 * (e.g. `"WriterThreadMain"`), in the caller's directory.
 */
export const spawn = (callerUrl: string, name: string, options: SpawnOptions = {}): Worker => {
  const { semiSpaceMb, ...workerOptions } = options
  if (semiSpaceMb === undefined) return start(callerUrl, name, workerOptions)
  // V8 reads the flag when it makes the thread's heap, before the thread runs ("online"); a thread
  // that never starts ends with "exit". Only isolates made meanwhile see the value.
  starting++
  setFlagsFromString(`--max-semi-space-size=${Math.max(1, Math.floor(semiSpaceMb))}`)
  let restored = false
  const restore = () => {
    if (restored) return
    restored = true
    if (--starting === 0) setFlagsFromString(`--max-semi-space-size=${processSemiSpace()}`)
  }
  try {
    const w = start(callerUrl, name, workerOptions)
    w.once("online", restore)
    w.once("exit", restore)
    return w
  } catch (e) {
    restore()
    throw e
  }
}

const start = (callerUrl: string, name: string, options: WorkerOptions): Worker => {
  if (!fileURLToPath(callerUrl).endsWith(".ts")) return new Worker(new URL(`./${name}.js`, callerUrl), options)
  const tsxApi = new URL("./esm/api/index.mjs", pathToFileURL(createRequire(callerUrl).resolve("tsx"))).href
  const entry = new URL(`./${name}.ts`, callerUrl).href
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`
  // Explicit execArgv is checked (the parent's --max-old-space-size or --expose-gc would make `new
  // Worker` throw), inherited execArgv is not: so only the condition is given. The thread registers tsx itself.
  const execArgv = options.execArgv ?? ["--conditions=source"]
  return new Worker(code, { ...options, eval: true, execArgv })
}
