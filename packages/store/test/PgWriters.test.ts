/**
 * Several collector processes (one per MTA host) adding into one PostgreSQL store at once: counts of
 * the same key add up, none is lost or overwritten (addResults locks the rows it merges into, inserts
 * new keys with ON CONFLICT DO NOTHING, and retries a transaction that deadlocked).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { PgTestDatabase } from "@tlsrpt/testkit"
import { Effect } from "effect"
import { ResultStore } from "../src/ResultStore.js"
import { BATCHES, KEYS } from "./fixtures/PgWriter.js"

const packageDir = fileURLToPath(new URL("..", import.meta.url))
const WRITERS = 4

const runWriter = (url: string, writer: number) =>
  Effect.async<void, Error>((resume) => {
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", "test/fixtures/PgWriter.ts", url, String(writer)],
      { cwd: packageDir, stdio: ["ignore", "pipe", "pipe"] }
    )
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
    })
    child.on("exit", (code) => {
      if (code === 0 && out.includes("done")) resume(Effect.void)
      else resume(Effect.fail(new Error(`writer ${writer} exited with ${code}: ${out}`)))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe.skipIf(!PgTestDatabase.available())("ResultStore.layerPg with several writer processes", () => {
  it.scopedLive(
    `${WRITERS} processes × ${BATCHES} batches × ${KEYS} overlapping keys: exact sums, one row per key`,
    () =>
      Effect.gen(function* () {
        const url = yield* PgTestDatabase.fresh
        yield* Effect.forEach(
          Array.from({ length: WRITERS }, (_, w) => w),
          (w) => runWriter(url, w),
          { concurrency: "unbounded", discard: true }
        )
        const rows = yield* Effect.flatMap(ResultStore, (store) => store.listResults()).pipe(
          Effect.provide(ResultStore.layerPg({ url }))
        )
        assert.strictEqual(rows.length, KEYS)
        const each = WRITERS * BATCHES
        for (const r of rows) {
          assert.strictEqual(r.results.length, 1, r.recipientDomain)
          const summary = r.results[0]!.summary
          assert.deepStrictEqual(
            [
              summary.totalSuccessfulSessionCount,
              summary.totalFailureSessionCount,
              r.results[0]!.failureDetails[0]!.failedSessionCount
            ],
            [each, each, each],
            r.recipientDomain
          )
          // Some writer asked for a report of every key (k % 3 matches one of 4 writers' w % 3).
          assert.isTrue(r.sendReport)
        }
      }),
    { timeout: 240_000 }
  )
})
