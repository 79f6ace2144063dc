/**
 * Benchmark `fleet`: round throughput with 1, 2 and 3 runner processes on one PostgreSQL (cluster
 * tables) — N recipient domains with failures plus their 7 MX hosts, RSA-2048 DKIM, no pacing, no
 * delivery; and collector throughput: 4 writer processes (MTA hosts, bench/CollectorWriter.ts) each
 * recording FLEET_BENCH_OUTCOMES session outcomes over the same 2,000 recipient domains through the
 * collector into one PostgreSQL store, the hosts' rows of one key summing in the database. Collector
 * figures are over the span from the first writer's start to the last one's final flush: outcomes/s
 * recorded and rows/s upserted (aggregated rows written by the flushes), fleet-wide.
 * Needs TLSRPT_TEST_PG_URL (scripts/pg.sh run …). Prints one line per measurement and one JSON line.
 * FLEET_BENCH_DOMAINS (default 1000), FLEET_BENCH_RUNNERS (default 1,2,3), FLEET_BENCH_WRITERS
 * (default 4), FLEET_BENCH_OUTCOMES (per writer, default 100000).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { PgClient } from "@effect/sql-pg"
import { Day } from "@tlsrpt/core"
import { ResultStore, Store } from "@tlsrpt/store"
import { Effect, Either, Layer, Logger, LogLevel, Redacted, Schema } from "effect"
import { ClusterStatus, FleetCluster, ReportRound } from "../src/index.js"
import { DAY, dkimPem, rows } from "../test/FleetEnv.js"
import * as FleetPg from "../test/FleetPg.js"

const DOMAINS = Number(process.env.FLEET_BENCH_DOMAINS ?? 1000)
const RUNNERS = (process.env.FLEET_BENCH_RUNNERS ?? "1,2,3").split(",").map(Number)
const SHARDS = 60
const RUNNER = fileURLToPath(new URL("../test/fixtures/Runner.ts", import.meta.url))
const WRITER = fileURLToPath(new URL("./CollectorWriter.ts", import.meta.url))
const WRITERS = Number(process.env.FLEET_BENCH_WRITERS ?? 4)
const OUTCOMES = Number(process.env.FLEET_BENCH_OUTCOMES ?? 100_000)
const WRITER_DOMAINS = 2000

const WriterLine = Schema.parseJson(
  Schema.Struct({
    writer: Schema.Number,
    start: Schema.Number,
    end: Schema.Number,
    recorded: Schema.Number,
    rows: Schema.Number
  })
)

/** One writer process; its JSON line. */
const writer = (url: string, i: number) =>
  Effect.async<typeof WriterLine.Type, Error>((resume) => {
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", WRITER, url, String(i), String(OUTCOMES), String(WRITER_DOMAINS)],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
    })
    child.on("exit", (code) => {
      const line = Schema.decodeUnknownEither(WriterLine)(out.trim().split("\n").at(-1) ?? "")
      resume(
        code === 0 && Either.isRight(line)
          ? Effect.succeed(line.right)
          : Effect.fail(new Error(`writer ${i} exited with ${code}: ${out}`))
      )
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** WRITERS collector processes into one fresh schema at once; fleet-wide outcomes/s and rows/s. */
const collectors = Effect.gen(function* () {
  const url = yield* FleetPg.fresh
  // migrate once before the writers start, so they do not race to create the tables
  yield* Effect.provide(Effect.void, Store.layerPg({ url }))
  const lines = yield* Effect.forEach(
    Array.from({ length: WRITERS }, (_, i) => i),
    (i) => writer(url, i),
    { concurrency: "unbounded" }
  )
  const seconds = (Math.max(...lines.map((l) => l.end)) - Math.min(...lines.map((l) => l.start))) / 1000
  const recorded = lines.reduce((n, l) => n + l.recorded, 0)
  const rows = lines.reduce((n, l) => n + l.rows, 0)
  // the hosts' counts of one key sum: the store holds each key once with every host's sessions
  const keys = yield* Effect.flatMap(ResultStore, (s) => s.keysUpTo(Day.fromMillis(Date.UTC(2025, 0, 15)))).pipe(
    Effect.provide(Store.layerPg({ url }))
  )
  return {
    writers: WRITERS,
    recorded,
    rows,
    keys: keys.length,
    seconds,
    outcomesPerSecond: recorded / seconds,
    rowsPerSecond: rows / seconds
  }
}).pipe(Effect.scoped, Effect.orDie)

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
  const c = yield* collectors
  console.log(
    `collector, ${c.writers} writer processes into one PostgreSQL: ${c.recorded} outcomes in ${c.seconds.toFixed(1)} s = ${c.outcomesPerSecond.toFixed(0)} outcomes/s, ${c.rows} rows = ${c.rowsPerSecond.toFixed(0)} rows/s (${c.keys} distinct keys)`
  )
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
      })),
      collector: {
        writers: c.writers,
        outcomes: c.recorded,
        rows: c.rows,
        seconds: Number(c.seconds.toFixed(2)),
        outcomesPerSecond: Math.round(c.outcomesPerSecond),
        rowsPerSecond: Math.round(c.rowsPerSecond)
      }
    })
  )
}).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).catch((e) => {
  console.error(e)
  process.exit(1)
})
