/**
 * The shipped bin is the esbuild bundle (bundle.mjs; deploy/tlsrpt.service runs it): it must start
 * the worker on the embedded default, threads included (ThreadEntry finds their entries beside the
 * chunk that starts them), and stop cleanly on SIGTERM.
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const app = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "..")

describe("Bundle", () => {
  it.scoped(
    "the bundled bin runs the worker on the embedded default: the datagram thread listens, SIGTERM exits 0",
    () =>
      Effect.gen(function* () {
        const built = spawnSync(process.execPath, [NodePath.join(app, "bundle.mjs")], { encoding: "utf8" })
        assert.strictEqual(built.status, 0, built.stderr)
        const dir = mkdtempSync(NodePath.join(tmpdir(), "tlsrpt-bundle-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const result = yield* Effect.async<{
          code: number | null
          signal: string | null
          stdout: string
          stderr: string
        }>((resume) => {
          const child = spawn(
            process.execPath,
            ["--max-semi-space-size=4", NodePath.join(app, "dist/bundle/main.js"), "worker"],
            {
              cwd: dir,
              env: { ...process.env, TLSRPT_CONFIG: "", TLSRPT_DATA_DIR: dir, TLSRPT_HTTP_LISTEN: "127.0.0.1:0" },
              stdio: ["ignore", "pipe", "pipe"]
            }
          )
          let stdout = ""
          let stderr = ""
          // once: a second SIGTERM during the shutdown ends the process by the signal
          let stopped = false
          child.stdout.setEncoding("utf8").on("data", (d: string) => {
            stdout += d
            if (!stopped && stdout.includes("listening for libtlsrpt datagrams")) {
              stopped = true
              child.kill("SIGTERM")
            }
          })
          child.stderr.setEncoding("utf8").on("data", (d: string) => {
            stderr += d
          })
          child.on("exit", (code, signal) => resume(Effect.succeed({ code, signal, stdout, stderr })))
          return Effect.sync(() => child.kill("SIGKILL"))
        })
        assert.strictEqual(result.code, 0, `${result.signal} ${result.stderr} ${result.stdout}`)
        assert.include(result.stdout, "listening for libtlsrpt datagrams")
        assert.include(result.stdout, "tlsrpt worker stopped")
      }),
    60_000
  )
})
