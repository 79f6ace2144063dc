/**
 * Fleet mode through the bin (docs/design.md#fleet-mode): a worker with a `cluster` section joins the
 * cluster as a runner (its tables in the store's database), `cluster status` shows it owning every
 * shard and the rounds (so does the admin API's `/api/cluster`), and `send --day D` has the worker run
 * the round and waits for the delivery.
 */
import { readFileSync } from "node:fs"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Day } from "@tlsrpt/core"
import { DnsServer, PgTestDatabase, SmtpSink } from "@tlsrpt/testkit"
import { Clock, Effect } from "effect"
import { runBin, startBin } from "./Bin.js"
import { configurePeers, freePort, importRow, jsonLines, tempDir, write } from "./Fixtures.js"

interface StatusJson {
  readonly runners: ReadonlyArray<{ readonly address: string; readonly alive: boolean; readonly shardCount: number }>
  readonly rounds: ReadonlyArray<{ readonly id: string; readonly day: string; readonly state: string }>
}

// The production setup (PostgreSQL store and cluster tables) and the embedded one: the cluster's
// snowflake ids once lost their low bits through the store's PostgreSQL client, and only a round
// through the bin on PostgreSQL shows that (docs/design.md#fleet-trim).
const databases = [
  { label: "SQLite", postgres: false },
  { label: "PostgreSQL", postgres: true }
] as const

describe.each(databases)("fleet mode through the bin on $label", ({ postgres }) => {
  it.scopedLive.skipIf(postgres && !PgTestDatabase.available())(
    "worker joins the cluster; cluster status; send --day runs the round on the worker and waits for delivery",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("tlsrpt-fleet-")
        const database = postgres ? { database: { type: "postgres", url: yield* PgTestDatabase.fresh } } : {}
        const dns = yield* DnsServer.make({ "_smtp._tls.example.org": ["v=TLSRPTv1; rua=mailto:tlsrpt@example.org"] })
        const smtp = yield* SmtpSink.make()
        const init = yield* runBin(["init", "--domain", "sender.example"], { cwd: dir })
        assert.strictEqual(init.code, 0, init.stderr)
        const configFile = yield* configurePeers(dir, {
          dns: dns.address,
          smtp: smtp.url,
          more: { cluster: { shards: 12 }, ...database }
        })
        const address = `127.0.0.1:${yield* freePort}`
        const cli = (args: ReadonlyArray<string>) =>
          runBin([...args, "--config", "tlsrpt.json"], { cwd: dir, env: { TLSRPT_CLUSTER_RUNNER_ADDRESS: address } })
        const status = Effect.map(cli(["cluster", "status", "--json"]), (r) => JSON.parse(r.stdout) as StatusJson)

        const worker = yield* startBin(["worker", "--config", "tlsrpt.json"], {
          cwd: dir,
          env: { TLSRPT_CLUSTER_RUNNER_ADDRESS: address }
        })
        const yesterday = Day.addDays(Day.fromMillis(yield* Clock.currentTimeMillis), -1)
        // the start-up round of the day that just ended (nothing to send yet)
        let s = yield* status
        for (let i = 0; i < 240 && !s.rounds.some((r) => r.id === `daily:${yesterday}` && r.state === "done"); i++) {
          yield* Effect.sleep("500 millis")
          s = yield* status
        }
        assert.deepStrictEqual(
          s.runners.map((r) => [r.address, r.alive, r.shardCount]),
          [[address, true, 12]],
          worker.stderr()
        )
        assert.deepStrictEqual(
          s.rounds.map((r) => [r.id, r.state]),
          [[`daily:${yesterday}`, "done"]]
        )
        const text = yield* cli(["cluster", "status"])
        assert.match(text.stdout, new RegExp(`${address.replace(/\./g, "\\.")}\\s+up .* 12 shards 1-12`))

        // the admin API shows the same status (the page's cluster section reads it)
        const base = (yield* worker.waitFor(/admin HTTP listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
        const token: string = JSON.parse(readFileSync(configFile, "utf8")).http.token
        const api = (yield* Effect.promise(() =>
          fetch(`${base}/api/cluster`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json())
        )) as { readonly enabled: boolean; readonly status: StatusJson & { readonly shards: number } }
        assert.isTrue(api.enabled)
        assert.strictEqual(api.status.shards, 12)
        assert.deepStrictEqual(
          api.status.runners.map((r) => [r.address, r.alive, r.shardCount]),
          [[address, true, 12]]
        )
        assert.deepStrictEqual(
          api.status.rounds.map((r) => [r.id, r.state]),
          [[`daily:${yesterday}`, "done"]]
        )

        yield* write(dir, "rows.jsonl", jsonLines([importRow("example.org", { day: yesterday })]))
        const imported = yield* cli(["import", "rows.jsonl"])
        assert.strictEqual(imported.code, 0, imported.stderr)
        const sent = yield* cli(["send", "--day", yesterday])
        assert.strictEqual(sent.code, 0, sent.stderr)
        assert.match(sent.stdout, /1 reports, 1 messages queued/, `${sent.stdout}\n${sent.stderr}`)
        assert.match(sent.stdout, /delivery: 1 delivered, 0 to retry, 0 failed/)
        const received = yield* smtp.received
        assert.deepStrictEqual(
          received.map((m) => m.to),
          [["tlsrpt@example.org"]]
        )
        const after = yield* status
        assert.strictEqual(after.rounds.length, 2)
        assert.match(after.rounds[0]?.id ?? "", /^send:/)
        assert.strictEqual(after.rounds[0]?.state, "done")
      }).pipe(Effect.provide(NodeContext.layer)),
    180_000
  )
})
