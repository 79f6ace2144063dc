/**
 * Starts a worker thread on a module next to the caller, from the compiled `.js` or, when the caller
 * itself runs from its TypeScript sources (tests, benchmarks under tsx), on the `.ts` through tsx
 * registered inside the thread: on Node 20 loader hooks are not inherited by worker threads. The
 * `source` export condition is passed on so the thread resolves workspace packages as its parent does.
 * From `.js` the thread inherits the process's flags, `--max-old-space-size` included.
 */
import { createRequire } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Worker, type WorkerOptions } from "node:worker_threads"

/**
 * `callerUrl`: the caller's `import.meta.url`; `name`: the entry module's base name without extension
 * (e.g. `"WriterThreadMain"`), in the caller's directory.
 */
export const spawn = (callerUrl: string, name: string, options: WorkerOptions = {}): Worker => {
  if (!fileURLToPath(callerUrl).endsWith(".ts")) return new Worker(new URL(`./${name}.js`, callerUrl), options)
  const tsxApi = new URL("./esm/api/index.mjs", pathToFileURL(createRequire(callerUrl).resolve("tsx"))).href
  const entry = new URL(`./${name}.ts`, callerUrl).href
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`
  // Explicit execArgv is checked (the parent's --max-old-space-size or --expose-gc would make `new
  // Worker` throw), inherited execArgv is not: so only the condition is given. The thread registers tsx itself.
  const execArgv = options.execArgv ?? ["--conditions=source"]
  return new Worker(code, { ...options, eval: true, execArgv })
}
