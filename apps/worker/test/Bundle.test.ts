/**
 * The shipped bin is the esbuild bundle (bundle.mjs; deploy/tlsrpt.service runs it): it must start
 * the worker on the embedded default, threads included (ThreadEntry finds their entries beside the
 * chunk that starts them), and stop cleanly on SIGTERM. Its compose thread writes the bytes the
 * sources do, and loads no Schema (issue 15).
 */
import { spawn, spawnSync } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import { assert, describe, it } from "@effect/vitest"
import { Report } from "@tlsrpt/core"
import { type ComposePool, makeComposePool } from "@tlsrpt/mail"
import { Effect, Either } from "effect"

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

  it.scoped(
    "the bundled compose thread loads no Schema and signs the bytes the sources' pool signs",
    () =>
      Effect.gen(function* () {
        const built = spawnSync(process.execPath, [NodePath.join(app, "bundle.mjs")], { encoding: "utf8" })
        assert.strictEqual(built.status, 0, built.stderr)
        const bundle = NodePath.join(app, "dist/bundle")
        // the entry and the chunks it imports, statically or not
        const loaded = new Set<string>()
        const queue = ["ComposeWorker.js"]
        for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
          if (loaded.has(file)) continue
          loaded.add(file)
          const code = readFileSync(NodePath.join(bundle, file), "utf8")
          for (const m of code.matchAll(/(?:from|import)\s*\(?"\.\/([^"]+\.js)"/g)) queue.push(m[1]!)
          // keepNames: effect's Schema would bring its ParseError class by name
          assert.notInclude(code, "ParseError", file)
        }
        const seed = JSON.parse(
          readFileSync(new URL("../../../packages/testkit/fixtures/seed.json", import.meta.url), "utf8")
        ) as { readonly reports: { readonly report1: unknown } }
        const job: Parameters<ComposePool["run"]>[0] = {
          hostname: "mox.example",
          from: "postmaster@mox.example",
          to: ["tlsrpt@b.example"],
          subject: "Report Domain: b.example",
          reportHeaders: [
            ["TLS-Report-Domain", "b.example"],
            ["TLS-Report-Submitter", "mox.example"]
          ],
          messageId: "<1@mox.example>",
          date: Date.UTC(2024, 0, 10),
          boundary: "tlsrpt-1",
          text: "This is an aggregate TLS report.\r\n",
          filename: "mox.example!b.example!1704758400!1704844799.json.gz",
          mediaType: "application/tlsrpt+gzip",
          report: Either.getOrThrow(Report.fromJson(seed.reports.report1))
        }
        const privateKeyPem = generateKeyPairSync("rsa", { modulusLength: 2048 })
          .privateKey.export({ type: "pkcs8", format: "pem" })
          .toString()
        const init = {
          keys: [{ domain: "mox.example", selector: "s", algorithm: "rsa-sha256" as const, privateKeyPem }],
          options: { headers: ["From", "Subject"], oversign: [] }
        }
        const worker = new Worker(NodePath.join(bundle, "ComposeWorker.js"), { workerData: init })
        yield* Effect.addFinalizer(() => Effect.promise(() => worker.terminate()))
        const bundled = yield* Effect.async<Buffer>((resume) => {
          worker.once("message", ({ buffer }: { readonly buffer: ArrayBuffer }) =>
            resume(Effect.succeed(Buffer.from(buffer)))
          )
          worker.once("error", (e) => resume(Effect.die(e)))
          worker.postMessage([{ id: 0, job }])
        })
        const pool = yield* makeComposePool(1, init)
        const sources = yield* pool.run(job)
        assert.strictEqual(bundled.toString("latin1"), Buffer.from(sources).toString("latin1"))
      }),
    60_000
  )
})
