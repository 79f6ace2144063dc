/**
 * The shipped bin is the esbuild bundle (bundle.mjs; deploy/tlsrpt.service runs it): it must start
 * the worker on the embedded default, threads included (ThreadEntry finds their entries beside the
 * chunk that starts them), and stop cleanly on SIGTERM. Its compose thread writes the bytes the
 * sources do, and loads no Schema (issue 15).
 */
import { spawn, spawnSync } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import { assert, describe, it } from "@effect/vitest"
import { Report } from "@tlsrpt/core"
import { type ComposePool, makeComposePool } from "@tlsrpt/mail"
import { Effect, Either } from "effect"

const app = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "..")

/** Builds the bundle (bundle.mjs) and gives its folder. */
const buildBundle = (): string => {
  const built = spawnSync(process.execPath, [NodePath.join(app, "bundle.mjs")], { encoding: "utf8" })
  assert.strictEqual(built.status, 0, built.stderr)
  return NodePath.join(app, "dist/bundle")
}

/** A bundled entry and the chunks it imports, statically or not: each file's code by name. */
const loadedBy = (bundle: string, entry: string): Map<string, string> => {
  const loaded = new Map<string, string>()
  const queue = [entry]
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (loaded.has(file)) continue
    const code = readFileSync(NodePath.join(bundle, file), "utf8")
    loaded.set(file, code)
    for (const m of code.matchAll(/(?:from|import)\s*\(?"\.\/([^"]+\.js)"/g)) queue.push(m[1]!)
  }
  return loaded
}

describe("Bundle", () => {
  it.scoped(
    "the bundled bin runs the worker on the embedded default: the datagram thread listens, SIGTERM exits 0",
    () =>
      Effect.gen(function* () {
        buildBundle()
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
        const bundle = buildBundle()
        // keepNames: effect's Schema would bring its ParseError class by name
        for (const [file, code] of loadedBy(bundle, "ComposeWorker.js")) assert.notInclude(code, "ParseError", file)
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

  it.scoped(
    "the bundled outbox folder writer loads only the writer, and writes a message's pair",
    () =>
      Effect.gen(function* () {
        const bundle = buildBundle()
        const loaded = loadedBy(bundle, "DirWriterMain.js")
        // keepNames: effect's runtime would bring its FiberRuntime class by name
        for (const [file, code] of loaded) assert.notInclude(code, "FiberRuntime", file)
        // the writer and its file format, a few KB: no effect, no store
        const bytes = [...loaded.values()].reduce((n, code) => n + code.length, 0)
        assert.isBelow(bytes, 20_000, [...loaded.keys()].join(", "))
        const dir = mkdtempSync(NodePath.join(tmpdir(), "tlsrpt-bundle-dir-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const worker = new Worker(NodePath.join(bundle, "DirWriterMain.js"))
        yield* Effect.addFinalizer(() => Effect.promise(() => worker.terminate()))
        const message = {
          id: 1,
          kind: "mailto",
          destination: "tlsrpt@b.example",
          envelopeFrom: "postmaster@mox.example",
          reportId: "r1",
          policyDomain: "b.example",
          day: "2024-01-09",
          payload: new TextEncoder().encode("mail\r\n")
        }
        const errors = yield* Effect.async<ReadonlyArray<string | undefined>>((resume) => {
          worker.once("message", (m: ReadonlyArray<string | undefined>) => resume(Effect.succeed(m)))
          worker.postMessage({ dir: NodePath.join(dir, "outbox"), messages: [message] })
        })
        assert.deepStrictEqual(errors, [undefined])
        assert.deepStrictEqual(readdirSync(NodePath.join(dir, "outbox")).sort(), [
          "1-tlsrpt@b.example.eml",
          "1-tlsrpt@b.example.json"
        ])
      }),
    60_000
  )
})
