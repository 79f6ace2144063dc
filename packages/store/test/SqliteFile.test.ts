import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Deferred, Effect, Either, Exit, Layer, Schema } from "effect"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Migrations from "../src/Migrations.js"
import { Outbox } from "../src/Outbox.js"
import { type NewResultRow, ResultStore } from "../src/ResultStore.js"
import * as Store from "../src/Store.js"
import { SuppressionList } from "../src/SuppressionList.js"
import { dialect } from "../src/sqlite/SqliteDialect.js"
import { seedDay, seedRows } from "./Seed.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tlsrpt-store-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const packageDir = fileURLToPath(new URL("..", import.meta.url))

/** Everything the store holds, read through the port. */
const snapshot = Effect.gen(function* () {
  return {
    results: yield* (yield* ResultStore).listResults(),
    suppressions: yield* (yield* SuppressionList).list,
    outbox: yield* (yield* Outbox).list()
  }
})

describe("Store.layer (SQLite file)", () => {
  it.scoped("close and reopen keeps everything; migrations run once; WAL with synchronous NORMAL", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "nested", "deeper", "results.db")
      const layer = Store.layer({ filename })

      const written = yield* Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults(seedRows)
        yield* (yield* SuppressionList).add({
          address: "r@☺.example",
          until: new Date(Date.UTC(2030, 0, 1)),
          comment: "asked"
        })
        yield* store.markSentAndEnqueueAll([
          {
            mark: {
              phase: "recipient-domain",
              recipientDomain: "xn--74h.example",
              day: seedDay,
              reportingAddresses: ["mailto:tls-reports@xn--74h.example"]
            },
            messages: [
              {
                kind: "mailto",
                destination: "tls-reports@xn--74h.example",
                envelopeFrom: "postmaster@mox.example",
                payload: new Uint8Array([0, 1, 2, 255]),
                reportId: "20240109.xn--74h.example@mox.example",
                policyDomain: "xn--74h.example",
                day: seedDay
              }
            ]
          }
        ])
        return yield* snapshot
      }).pipe(Effect.provide(layer))
      assert.strictEqual(written.results.length, 6)
      // The last connection closed: SQLite checkpointed the WAL into the file and removed it.
      assert.isTrue(existsSync(filename))
      assert.isFalse(existsSync(`${filename}-wal`))

      yield* Effect.gen(function* () {
        assert.deepStrictEqual(yield* snapshot, written)
        const sql = yield* SqlClient.SqlClient
        const applied = yield* sql<{
          readonly migration_id: number
          readonly name: string
        }>`SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id`
        assert.deepStrictEqual(
          applied.map((m) => [m.migration_id, m.name]),
          [
            [1, "results"],
            [2, "suppressions"],
            [3, "outbox"],
            [4, "reported_days"],
            [5, "outbox_lease"],
            [6, "outbox_due"]
          ]
        )
        assert.deepStrictEqual(yield* Migrations.run(dialect), [])
        assert.deepStrictEqual(yield* sql`PRAGMA journal_mode`, [{ journal_mode: "wal" }])
        assert.deepStrictEqual(yield* sql`PRAGMA synchronous`, [{ synchronous: 1 }])
        assert.deepStrictEqual(yield* sql`PRAGMA busy_timeout`, [{ timeout: 5000 }])
        // And it keeps working after the reopen.
        yield* (yield* ResultStore).addResults(seedRows.slice(0, 1))
        const [[first]] = yield* (yield* ResultStore).rowsOfKeys("recipient-domain", [
          { domain: "xn--74h.example", day: seedDay }
        ])
        assert.strictEqual(first!.results[0]!.summary.totalSuccessfulSessionCount, 20)
        assert.isTrue(first!.sentToRecipientDomain)
      }).pipe(Effect.provide(layer))
    })
  )

  it.effect("an unusable path fails with StoreError(open <file>)", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.provide(ResultStore, Store.layer({ filename: "/dev/null/not-a-directory/results.db" }))
      )
      assert.strictEqual(error._tag, "StoreError")
      // The operation names the file, for the operator.
      assert.strictEqual(error.operation, "open /dev/null/not-a-directory/results.db")
    })
  )

  it.scoped("SIGKILL while flushing leaves whole batches only, and the file opens again", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "crash.db")
      const printed = yield* killAfter(filename, 5)

      // Reopening runs the migrator again and must find nothing to do.
      const rows = yield* Effect.flatMap(ResultStore, (store) => store.listResults()).pipe(
        Effect.provide(Store.layer({ filename }))
      )
      // CrashWriter.ts: every batch adds 1 to 500 shared keys and creates 500 keys of its own.
      const shared = rows.filter((r) => r.policyDomain.startsWith("shared"))
      const own = rows.filter((r) => r.policyDomain.startsWith("b"))
      assert.strictEqual(shared.length, 500)
      assert.strictEqual(own.length % 500, 0)
      const batches = own.length / 500
      assert.isAtLeast(batches, printed)
      for (const r of shared) assert.strictEqual(r.results[0]!.summary.totalSuccessfulSessionCount, batches)
      for (let i = 0; i < batches; i++) {
        assert.strictEqual(own.filter((r) => r.policyDomain.startsWith(`b${i}-`)).length, 500)
      }
    })
  )

  it.scoped(
    "10 concurrent fibers × 5 batches of 200 rows on one file: exact sums (volume: bench/addResults.ts)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const KEYS = 200
        const FIBERS = 10
        const BATCHES = 5
        const recipients = Array.from({ length: 10 }, (_, i) => Domain.unsafeMake(`r${i}.example`))
        const hosts = Array.from({ length: KEYS / 10 }, (_, i) => Domain.unsafeMake(`mx${i}.example`))
        const day = Day.fromMillis(Date.UTC(2024, 0, 9))
        const batch = (fiber: number): Array<NewResultRow> =>
          Array.from({ length: KEYS }, (_, k) => ({
            policyDomain: hosts[Math.floor(k / 10)]!,
            day,
            recipientDomain: recipients[k % 10]!,
            isHost: true,
            sendReport: fiber === FIBERS - 1,
            results: [
              PolicyResult.make("tlsa", hosts[Math.floor(k / 10)]!.ascii, {
                success: 2,
                failure: 1,
                failureDetails: [{ resultType: "dane-required", failedSessionCount: 1 }]
              })
            ]
          }))

        yield* Effect.gen(function* () {
          const store = yield* ResultStore
          yield* Effect.forEach(
            Array.from({ length: FIBERS }, (_, f) => f),
            (f) => Effect.repeatN(store.addResults(batch(f)), BATCHES - 1),
            { concurrency: "unbounded", discard: true }
          )
          const rows = yield* store.listResults()
          assert.strictEqual(rows.length, KEYS)
          let success = 0
          let failure = 0
          let details = 0
          for (const r of rows) {
            assert.strictEqual(r.results.length, 1)
            assert.isTrue(r.sendReport)
            success += r.results[0]!.summary.totalSuccessfulSessionCount
            failure += r.results[0]!.summary.totalFailureSessionCount
            assert.strictEqual(r.results[0]!.failureDetails.length, 1)
            details += r.results[0]!.failureDetails[0]!.failedSessionCount
          }
          const batches = FIBERS * BATCHES
          assert.deepStrictEqual([success, failure, details], [2 * KEYS * batches, KEYS * batches, KEYS * batches])
        }).pipe(Effect.provide(Store.layer({ filename: join(dir, "concurrent.db") })))
      }),
    { timeout: 120_000 }
  )

  // addResults yields to other fibers between its statements (live clock: its slices are timed); a
  // query of another fiber must still not see (or join) the open transaction: it waits for the commit.
  it.scopedLive("a query while addResults yields sees all of the batch or none of it", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const day = Day.fromMillis(Date.UTC(2024, 0, 9))
      const recipient = Domain.unsafeMake("r.example")
      const rows: Array<NewResultRow> = Array.from({ length: 2_000 }, (_, k) => {
        const host = Domain.unsafeMake(`mx${k}.example`)
        return {
          policyDomain: host,
          day,
          recipientDomain: recipient,
          isHost: true,
          sendReport: true,
          results: [PolicyResult.make("tlsa", host.ascii, { success: 1 })]
        }
      })
      yield* Effect.gen(function* () {
        const store = yield* ResultStore
        const seen = yield* Effect.all(
          [
            store.addResults(rows),
            Effect.forEach(
              Array.from({ length: 20 }, (_, i) => i),
              () =>
                Effect.zipLeft(
                  Effect.map(store.listResults(), (rs) => rs.length),
                  Effect.yieldNow()
                )
            )
          ],
          { concurrency: "unbounded" }
        ).pipe(Effect.map(([, counts]) => counts))
        for (const n of seen) assert.isTrue(n === 0 || n === rows.length, `saw ${n} rows`)
        assert.strictEqual((yield* store.listResults()).length, rows.length)
      }).pipe(Effect.provide(Store.layer({ filename: join(dir, "isolation.db") })))
    })
  )

  // sqlite/WriteTransactions.ts: with a deferred BEGIN, a transaction that read before the other
  // process committed cannot upgrade to a write lock and fails with SQLITE_BUSY ("database is locked")
  // at once, busy_timeout or not. BEGIN IMMEDIATE makes the second writer wait instead.
  it.scopedLive(
    "two writer processes on one file: interleaved read-then-write transactions all commit, sums exact",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const filename = join(dir, "two-writers.db")
        const ROUNDS = 100
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`
          yield* sql`INSERT INTO counter (id, n) VALUES (1, 0)`
        }).pipe(Effect.provide(Store.layer({ filename })))

        const writers = yield* Effect.forEach([0, 1], () => startWriter(filename, ROUNDS))
        yield* Effect.forEach(writers, (w) => w.ready, { discard: true })
        for (const w of writers) w.go()
        const exits = yield* Effect.forEach(writers, (w) => w.exited, { concurrency: "unbounded" })
        for (const e of exits) assert.deepStrictEqual(e, { code: 0, stdout: "ready\ndone\n", stderr: "" })

        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const [counter] = yield* sql<{ readonly n: number }>`SELECT n FROM counter WHERE id = 1`
          assert.strictEqual(counter!.n, 2 * ROUNDS)
          const rows = yield* (yield* ResultStore).listResults()
          // TwoWriters.ts: each round adds 1 to each of 20 shared keys.
          assert.strictEqual(rows.length, 20)
          for (const r of rows) assert.strictEqual(r.results[0]!.summary.totalSuccessfulSessionCount, 2 * ROUNDS)
        }).pipe(Effect.provide(Store.layer({ filename })))
      }),
    { timeout: 120_000 }
  )
})

/**
 * Starts test/fixtures/TwoWriters.ts on `filename`: `ready` once it has opened the store, `go` lets it
 * write, `exited` gives its exit code and output. Killed when the scope closes.
 */
const startWriter = (filename: string, rounds: number) =>
  Effect.gen(function* () {
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", "test/fixtures/TwoWriters.ts", filename, String(rounds)],
      { cwd: packageDir, stdio: ["pipe", "pipe", "pipe"] }
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
    const ready = yield* Deferred.make<void>()
    const exited = yield* Deferred.make<{
      readonly code: number | null
      readonly stdout: string
      readonly stderr: string
    }>()
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (stdout.includes("ready\n")) Deferred.unsafeDone(ready, Exit.void)
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("close", (code) => {
      Deferred.unsafeDone(ready, Exit.void)
      Deferred.unsafeDone(exited, Exit.succeed({ code, stdout, stderr }))
    })
    return {
      ready: Deferred.await(ready),
      go: () => child.stdin.end("go\n"),
      exited: Deferred.await(exited)
    }
  })

/**
 * Runs test/fixtures/CrashWriter.ts on `filename` and SIGKILLs it as soon as it has printed `lines`
 * committed batches (it is then inside the next one). Returns the number of lines it printed.
 */
const killAfter = (filename: string, lines: number) =>
  Effect.async<number, Error>((resume) => {
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", "test/fixtures/CrashWriter.ts", filename],
      { cwd: packageDir, stdio: ["ignore", "pipe", "pipe"] }
    )
    let printed = 0
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      printed += chunk.split("\n").filter((l) => l.startsWith("committed")).length
      if (printed >= lines) child.kill("SIGKILL")
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resume(Effect.succeed(printed))
      else resume(Effect.fail(new Error(`CrashWriter exited with ${code}: ${stderr}`)))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("Store.DatabaseConfig and Store.layerConfig", () => {
  it.scoped("a decoded `database` section: a path or { type: sqlite } opens that file; postgres needs a URL", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const decode = Schema.decodeUnknownEither(Store.DatabaseConfig)
      assert.deepStrictEqual(Either.getOrThrow(decode("state/t.db")), "state/t.db")
      assert.deepStrictEqual(Either.getOrThrow(decode({ type: "sqlite", file: "t.db" })), {
        type: "sqlite",
        file: "t.db"
      })
      for (const bad of ["", { type: "postgres", url: "mysql://db" }, { type: "sqlite" }, { type: "oracle" }])
        assert.isTrue(Either.isLeft(decode(bad)), JSON.stringify(bad))
      const file = join(dir, "config.db")
      yield* Effect.flatMap(ResultStore, (store) => store.addResults(seedRows)).pipe(
        Effect.provide(Store.layerConfig({ type: "sqlite", file }))
      )
      assert.isTrue(existsSync(file))
      const rows = yield* Effect.flatMap(ResultStore, (store) => store.listResults()).pipe(
        Effect.provide(Store.layer({ filename: file }))
      )
      assert.strictEqual(rows.length, seedRows.length)
    })
  )
})

describe("Store.layerSql", () => {
  it.effect("migrates and serves on a caller's SqlClient", () =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      yield* store.addResults(seedRows)
      assert.strictEqual((yield* store.keysUpTo(seedDay)).length, 6)
      const sql = yield* SqlClient.SqlClient
      assert.strictEqual((yield* sql`SELECT migration_id FROM effect_sql_migrations`).length, 6)
    }).pipe(
      Effect.provide(Store.layerSql(dialect).pipe(Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))))
    )
  )
})
