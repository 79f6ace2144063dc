/**
 * addResults throughput: batches of 10,000 distinct keys into a SQLite file, first as new keys, then
 * merged into the existing keys. Prints one JSON line of rows/s.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Effect } from "effect"
import { type NewResultRow, ResultStore } from "../src/ResultStore.js"
import * as Store from "../src/Store.js"

const BATCH = 10_000
const BATCHES = Number(process.env.BATCHES ?? 10)
const day = Day.fromMillis(Date.UTC(2025, 0, 1))
const recipients = Array.from({ length: 200 }, (_, i) => Domain.unsafeMake(`r${i}.example`))
const hosts = Array.from({ length: (BATCH * BATCHES) / 200 }, (_, i) => Domain.unsafeMake(`mx${i}.h.example`))

const batch = (b: number): Array<NewResultRow> =>
  Array.from({ length: BATCH }, (_, i) => {
    const n = b * BATCH + i
    const policyDomain = hosts[Math.floor(n / 200)]!
    return {
      policyDomain,
      day,
      recipientDomain: recipients[n % 200]!,
      isHost: true,
      sendReport: true,
      results: [
        PolicyResult.make("tlsa", policyDomain.ascii, {
          policyString: ["3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"],
          success: 5,
          failure: 1,
          failureDetails: [
            {
              resultType: "validation-failure",
              sendingMtaIp: "192.0.2.1",
              receivingMxHostname: policyDomain.ascii,
              receivingIp: "198.51.100.7",
              failedSessionCount: 1
            }
          ]
        })
      ]
    }
  })

const dir = mkdtempSync(join(tmpdir(), "tlsrpt-bench-"))
const batches = Array.from({ length: BATCHES }, (_, b) => batch(b))

const program = Effect.gen(function* () {
  const store = yield* ResultStore
  const time = (f: Effect.Effect<void, unknown>) =>
    Effect.gen(function* () {
      const t = performance.now()
      yield* f
      return performance.now() - t
    })
  const run = Effect.forEach(batches, (rows) => store.addResults(rows), { discard: true })
  const newMs = yield* time(run)
  const existingMs = yield* time(run)
  return {
    bench: "store.addResults",
    batch: BATCH,
    batches: BATCHES,
    newKeysRowsPerSec: Math.round((BATCH * BATCHES) / (newMs / 1000)),
    existingKeysRowsPerSec: Math.round((BATCH * BATCHES) / (existingMs / 1000)),
    newMsPerBatch: Math.round(newMs / BATCHES),
    existingMsPerBatch: Math.round(existingMs / BATCHES)
  }
})

const result = await Effect.runPromise(program.pipe(Effect.provide(Store.layer({ filename: join(dir, "results.db") }))))
rmSync(dir, { recursive: true, force: true })
console.log(JSON.stringify(result))
