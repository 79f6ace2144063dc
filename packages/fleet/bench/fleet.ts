/**
 * Benchmark `fleet`: round throughput with 1, 2 and 3 runner processes on one PostgreSQL (cluster
 * tables) — N recipient domains with failures plus their 7 MX hosts, RSA-2048 DKIM, no pacing, no
 * delivery. Needs TLSRPT_TEST_PG_URL (scripts/pg.sh run …). Prints one line per size and one JSON line.
 * FLEET_BENCH_DOMAINS (default 1000), FLEET_BENCH_RUNNERS (default 1,2,3).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { PgClient } from "@effect/sql-pg"
import { ResultStore, Store } from "@tlsrpt/store"
import { Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import { ClusterStatus, FleetCluster, ReportRound } from "../src/index.js"
import { DAY, dkimPem, rows } from "../test/FleetEnv.js"
import * as FleetPg from "../test/FleetPg.js"

const DOMAINS = Number(process.env.FLEET_BENCH_DOMAINS ?? 1000)
const RUNNERS = (process.env.FLEET_BENCH_RUNNERS ?? "1,2,3").split(",").map(Number)
const SHARDS = 60
const RUNNER = fileURLToPath(new URL("../test/fixtures/Runner.ts", import.meta.url))

const once = (runners: number) =>
  Effect.gen(function* () {
    const url = yield* FleetPg.fresh
    const dir = mkdtempSync(join(tmpdir(), "tlsrpt-bench-fleet-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    writeFileSync(join(dir, "dkim.pem"), (yield* dkimPem).privateKeyPem)
    const store = join(dir, "results.db")
    yield* Effect.gen(function* () {
      const s = yield* ResultStore
      const all = rows(DOMAINS)
      for (let i = 0; i < all.length; i += 1000) yield* s.addResults(all.slice(i, i + 1000))
    }).pipe(Effect.provide(Store.layer({ filename: store })), Effect.orDie)
    const children: Array<ChildProcess> = []
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const c of children) c.kill("SIGKILL")
      })
    )
    for (const port of yield* FleetPg.freePorts(runners)) {
      children.push(
        spawn(process.execPath, ["--conditions=source", "--import", "tsx", RUNNER], {
          env: {
            ...process.env,
            FLEET_PG_URL: url,
            FLEET_STORE: store,
            FLEET_PORT: String(port),
            FLEET_SHARDS: String(SHARDS),
            FLEET_DOMAINS: String(DOMAINS),
            FLEET_DKIM_PEM: join(dir, "dkim.pem")
          },
          stdio: ["ignore", "ignore", "inherit"]
        })
      )
    }
    const client = FleetCluster.client(SHARDS, { messagePollInterval: "1 second" }).pipe(
      Layer.provideMerge(PgClient.layer({ url: Redacted.make(url) }))
    )
    return yield* Effect.gen(function* () {
      const status = ClusterStatus.read({ shards: SHARDS, lockExpirationSeconds: 10 })
      while ((yield* status).runners.filter((r) => r.alive && r.shardCount > 0).length < runners) {
        yield* Effect.sleep("250 millis")
      }
      // the assignment settles once every runner has seen the others
      yield* Effect.sleep("5 seconds")
      const t0 = performance.now()
      const summary = yield* ReportRound.request(
        new ReportRound.RunRound({ id: `bench-${runners}`, day: DAY, pace: false })
      )
      const seconds = (performance.now() - t0) / 1000
      if (summary.reports !== DOMAINS + 7) throw new Error(`expected ${DOMAINS + 7} reports, got ${summary.reports}`)
      return { runners, keys: summary.keys.length, seconds, keysPerSecond: summary.keys.length / seconds }
    }).pipe(Effect.provide(client))
  }).pipe(Effect.scoped)

const main = Effect.gen(function* () {
  if ((process.env.TLSRPT_TEST_PG_URL ?? "") === "") {
    console.log(
      "bench fleet skipped: TLSRPT_TEST_PG_URL is not set (scripts/pg.sh run pnpm --filter @tlsrpt/fleet bench)"
    )
    return
  }
  const results = []
  for (const r of RUNNERS) {
    const res = yield* once(r)
    console.log(
      `fleet round, ${res.runners} runner(s): ${res.keys} keys in ${res.seconds.toFixed(1)} s = ${res.keysPerSecond.toFixed(1)} keys/s`
    )
    results.push(res)
  }
  console.log(
    JSON.stringify({
      bench: "fleet",
      domains: DOMAINS,
      keys: DOMAINS + 7,
      cores: availableParallelism(),
      rounds: results.map((r) => ({
        runners: r.runners,
        seconds: Number(r.seconds.toFixed(2)),
        keysPerSecond: Number(r.keysPerSecond.toFixed(1))
      }))
    })
  )
}).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).catch((e) => {
  console.error(e)
  process.exit(1)
})
