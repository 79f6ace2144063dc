import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Outbox, ResultStore, Store } from "@tlsrpt/store"
import { SmtpSink } from "@tlsrpt/testkit"
import { Effect, Layer, Logger } from "effect"
import { Delivery } from "../src/Delivery.js"
import { Transport } from "../src/Transport.js"

const here = dirname(fileURLToPath(import.meta.url))
const fixture = join(here, "fixtures", "EnqueueAndHang.ts")

/** Runs the fixture until it prints "committed", then SIGKILLs it and waits for it to die. */
const enqueueThenKill = (filename: string, destination: string) =>
  Effect.async<NodeJS.Signals | null, Error>((resume) => {
    const child: ChildProcess = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", fixture, filename, destination],
      { cwd: join(here, ".."), stdio: ["ignore", "pipe", "pipe"] }
    )
    let stdout = ""
    let stderr = ""
    let committed = false
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (!committed && stdout.includes("committed\n")) {
        committed = true
        child.kill("SIGKILL")
      }
    })
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("exit", (_code, signal) =>
      committed
        ? resume(Effect.succeed(signal))
        : resume(Effect.fail(new Error(`child exited before committing: ${stderr}`)))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("crash between the outbox transaction and delivery", () => {
  it.scopedLive("on restart the message is delivered exactly once, and its rows stay marked sent", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "tlsrpt-crash-"))),
        (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
      )
      const filename = join(dir, "tlsrpt.db")
      const signal = yield* enqueueThenKill(filename, "tlsrpt@rcpt.example")
      assert.strictEqual(signal, "SIGKILL")

      const sink = yield* SmtpSink.make()
      // "restart": a fresh process state opens the same file
      yield* Effect.gen(function* () {
        const store = yield* ResultStore
        const queued = yield* (yield* Outbox).list()
        assert.lengthOf(queued, 1)
        assert.strictEqual(queued[0]!.status, "queued")
        assert.strictEqual(queued[0]!.attempts, 0)
        const rows = yield* store.listResults()
        assert.lengthOf(rows, 1)
        assert.isTrue(rows[0]!.sentToRecipientDomain)

        const delivery = yield* Delivery
        const first = yield* delivery.runOnce
        const second = yield* delivery.runOnce
        assert.deepStrictEqual(first, { delivered: 1, retried: 0, failed: 0 })
        assert.deepStrictEqual(second, { delivered: 0, retried: 0, failed: 0 })
        const [m] = yield* (yield* Outbox).list()
        assert.strictEqual(m!.status, "delivered")
        assert.strictEqual(m!.attempts, 1)
      }).pipe(
        Effect.provide(
          Delivery.layerManual().pipe(
            Layer.provide(Transport.layerSmtp({ url: sink.url })),
            Layer.provideMerge(Store.layer({ filename }))
          )
        )
      )
      // and a second restart finds nothing left to send
      yield* Effect.flatMap(Delivery, (d) => d.runOnce).pipe(
        Effect.provide(
          Delivery.layerManual().pipe(
            Layer.provide(Transport.layerSmtp({ url: sink.url })),
            Layer.provide(Store.layer({ filename }))
          )
        )
      )
      const received = yield* sink.received
      assert.lengthOf(received, 1)
      assert.deepStrictEqual(received[0]!.to, ["tlsrpt@rcpt.example"])
      assert.include(Buffer.from(received[0]!.raw).toString(), "Subject: crash test")
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
  )
})
