/**
 * The real bin against PostgreSQL (`TLSRPT_DATABASE_URL`): `migrate` (several at once take turns on
 * the advisory lock), and `import`, `results`, `suppress`, `outbox` unchanged.
 */
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { PgTestDatabase } from "@tlsrpt/testkit"
import { Effect } from "effect"
import { FileSystem } from "@effect/platform"
import { runBin } from "./Bin.js"
import { importRow, jsonLines, tempDir as temporaryDir } from "./Fixtures.js"

const tempDir = temporaryDir("tlsrpt-pg-")

const row = (policyDomain: string) => importRow(policyDomain, { policyType: "no-policy-found", failure: 0 })

describe.skipIf(!PgTestDatabase.available())("tlsrpt bin on PostgreSQL", () => {
  it.scoped(
    "migrate ×3 at once; import, results, suppress, outbox against the shared database",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const url = yield* PgTestDatabase.fresh
        const env = { TLSRPT_DATABASE_URL: url }
        const migrated = yield* Effect.all(
          [1, 2, 3].map(() => runBin(["migrate"], { cwd: dir, env })),
          { concurrency: "unbounded" }
        )
        for (const m of migrated) {
          assert.strictEqual(m.code, 0, m.stderr)
          assert.match(m.stdout, /^postgres:\/\/tlsrpt@127\.0\.0\.1:\d+\/postgres.*: schema at migration \d+_\w+/)
        }

        const stdin = jsonLines([row("a.example"), row("b.example"), row("a.example")])
        const imported = yield* runBin(["import", "-"], { cwd: dir, env, stdin })
        assert.strictEqual(imported.code, 0, imported.stderr)
        const results = yield* runBin(["results", "--json"], { cwd: dir, env })
        assert.strictEqual(results.code, 0, results.stderr)
        const rows = JSON.parse(results.stdout) as ReadonlyArray<{ policyDomain: string; success: number }>
        assert.deepStrictEqual(
          rows.map((r) => [r.policyDomain, r.success]),
          [
            ["a.example", 6],
            ["b.example", 3]
          ]
        )

        const added = yield* runBin(["suppress", "add", "R@Example.com", "--until", "2031-01-01T00:00:00Z"], {
          cwd: dir,
          env
        })
        assert.strictEqual(added.code, 0, added.stderr)
        const list = yield* runBin(["suppress", "list", "--json"], { cwd: dir, env })
        assert.deepStrictEqual(
          (JSON.parse(list.stdout) as ReadonlyArray<{ address: string }>).map((s) => s.address),
          ["r@example.com"]
        )
        const outbox = yield* runBin(["outbox", "--json"], { cwd: dir, env })
        assert.strictEqual(outbox.code, 0, outbox.stderr)
        assert.deepStrictEqual(JSON.parse(outbox.stdout), [])
        // Nothing went to a SQLite file beside the config.
        assert.isFalse(yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(`${dir}/data/tlsrpt.db`)))
      }).pipe(Effect.provide(NodeContext.layer)),
    180_000
  )
})
