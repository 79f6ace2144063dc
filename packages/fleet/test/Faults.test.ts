/**
 * Fault tests with real processes: three runner processes on a real PostgreSQL, 2,000 recipient
 * domains with failures (and their 7 MX hosts), the SMTP sink. Needs TLSRPT_TEST_PG_URL; skipped with a
 * message without it, a failure in CI.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { EntityId, Sharding } from "@effect/cluster"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Outbox, ResultStore, Store } from "@tlsrpt/store"
import { SmtpSink } from "@tlsrpt/testkit"
import { Context, Duration, Effect, Fiber, Layer, Logger, LogLevel, Redacted, type Scope } from "effect"
import { ClusterStatus, FleetCluster, ReportRound } from "../src/index.js"
import { DAY, dkimPem, rows } from "./FleetEnv.js"
import * as FleetPg from "./FleetPg.js"

const DOMAINS = 2000
const KEYS = DOMAINS + 7
const SHARDS = 60
/** Each runner's delivery concurrency: the bound on duplicates when one is killed. */
const CONCURRENCY = 4
const RUNNER = fileURLToPath(new URL("./fixtures/Runner.ts", import.meta.url))

interface Fleet {
  readonly dir: string
  /** PostgreSQL (a fresh schema): the cluster's tables and the shared result store, as in production. */
  readonly url: string
  readonly runners: Map<string, ChildProcess>
}

const startRunner = (fleet: Fleet, port: number, extra: Record<string, string>) =>
  Effect.sync(() => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", RUNNER], {
      env: {
        ...process.env,
        FLEET_PG_URL: fleet.url,
        FLEET_STORE: "",
        FLEET_PORT: String(port),
        FLEET_SHARDS: String(SHARDS),
        FLEET_DOMAINS: String(DOMAINS),
        FLEET_DKIM_PEM: join(fleet.dir, "dkim.pem"),
        ...extra
      },
      stdio: ["ignore", "inherit", "inherit"]
    })
    fleet.runners.set(`127.0.0.1:${port}`, child)
  })

/** A temp dir with the DKIM key, the store seeded in a fresh PostgreSQL schema, runners killed at the end. */
const makeFleet = (url: string): Effect.Effect<Fleet, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "tlsrpt-fleet-"))
      writeFileSync(join(dir, "dkim.pem"), (yield* dkimPem).privateKeyPem)
      yield* Effect.gen(function* () {
        const s = yield* ResultStore
        const all = rows(DOMAINS)
        for (let i = 0; i < all.length; i += 1000) yield* s.addResults(all.slice(i, i + 1000))
      }).pipe(Effect.provide(Store.layerPg({ url })), Effect.orDie)
      return { dir, url, runners: new Map() }
    }),
    (fleet) =>
      Effect.sync(() => {
        for (const child of fleet.runners.values()) if (child.exitCode === null) child.kill("SIGKILL")
        rmSync(fleet.dir, { recursive: true, force: true })
      })
  )

/** The test process's view: a cluster client on the same PostgreSQL, and the results store. */
const clientLayer = (fleet: Fleet) =>
  FleetCluster.client(SHARDS, { messagePollInterval: "1 second" }).pipe(
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(fleet.url) })),
    Layer.merge(
      Layer.effectContext(Effect.map(Effect.context<Store.Store>(), Context.pick(ResultStore, Outbox))).pipe(
        Layer.provide(Store.layerPg({ url: fleet.url }))
      )
    )
  )

const waitFor = <A, E, R>(what: string, check: Effect.Effect<A | undefined, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1200; i++) {
      const a = yield* check
      if (a !== undefined) return a
      yield* Effect.sleep("250 millis")
    }
    return yield* Effect.dieMessage(`gave up waiting for ${what}`)
  })

const status = ClusterStatus.read({ shards: SHARDS, lockExpirationSeconds: 10 })

const messageId = (raw: Uint8Array) => /^Message-ID:\s*(\S+)/im.exec(Buffer.from(raw).toString("latin1"))?.[1] ?? ""

describe.skipIf(!FleetPg.available())("fleet on PostgreSQL, three runner processes", () => {
  it.live(
    "SIGKILL of the runner running the round: every report queued exactly once and delivered, duplicates only within its delivery concurrency",
    () =>
      Effect.gen(function* () {
        const url = yield* FleetPg.fresh
        const fleet = yield* makeFleet(url)
        const sink = yield* SmtpSink.make()
        // every runner delivers; an outbox claim (a lease of 15 s) keeps a message to one runner
        for (const port of yield* FleetPg.freePorts(3))
          yield* startRunner(fleet, port, {
            FLEET_DELIVERY: "1",
            FLEET_DELIVERY_CONCURRENCY: String(CONCURRENCY),
            FLEET_SMTP_URL: sink.url
          })
        yield* Effect.gen(function* () {
          yield* waitFor(
            "three runners",
            Effect.map(status, (s) =>
              s.runners.filter((r) => r.alive && r.shardCount > 0).length === 3 ? s : undefined
            )
          )
          // the runners refresh their assignments every few seconds: let them agree first
          yield* Effect.sleep("10 seconds")
          const store = yield* ResultStore
          const round = yield* ReportRound.request(
            new ReportRound.RunRound({ id: "fault-1", day: DAY, pace: false })
          ).pipe(Effect.fork)
          // kill the runner that owns the round's shard once a quarter of the reports are queued
          yield* waitFor(
            "a quarter of the reports",
            Effect.map((yield* Outbox).count(), (n) => (n >= KEYS / 4 ? n : undefined))
          )
          const shard = (yield* Sharding.Sharding).getShardId(EntityId.make(DAY), "default")
          const owner = (yield* status).runners.find((r) =>
            r.shards.split(",").some((range) => {
              const [a, b] = range.split("-").map(Number)
              return shard.id >= (a ?? 0) && shard.id <= (b ?? a ?? 0)
            })
          )
          assert.isDefined(owner)
          const killed = fleet.runners.get(owner?.address ?? "")
          killed?.kill("SIGKILL")
          const queuedAtKill = yield* (yield* Outbox).count()
          assert.isBelow(queuedAtKill, KEYS)

          const summary = yield* Fiber.join(round)
          // the round ran again on another runner: every key is sent or was already sent, none kept
          assert.strictEqual(summary.keys.length, KEYS)
          assert.deepStrictEqual(summary.kept, [])
          for (const k of summary.keys) assert.include(["sent", "already-sent"], k.outcome)

          const outbox = yield* (yield* Outbox).list()
          assert.strictEqual(outbox.length, KEYS)
          assert.strictEqual(new Set(outbox.map((m) => m.reportId)).size, KEYS)
          assert.deepStrictEqual(yield* store.listResults(), [])

          // the runners deliver everything; the killed runner's claims expire and are taken over
          yield* waitFor(
            "every message delivered",
            Effect.map((yield* Outbox).count("queued"), (n) => (n === 0 ? n : undefined))
          )
          assert.strictEqual(yield* (yield* Outbox).count("delivered"), KEYS)
          const received = yield* sink.received
          const ids = received.map((m) => messageId(m.raw))
          const expected = new Set(outbox.map((m) => messageId(m.payload)))
          assert.strictEqual(expected.size, KEYS)
          // none lost: every report arrived
          assert.deepStrictEqual(new Set(ids), expected)
          // a report arrives twice only when its SMTP transaction was in flight on the killed runner:
          // at most its delivery concurrency, and with the same Message-ID
          const duplicates = received.length - KEYS
          assert.isAtMost(duplicates, CONCURRENCY)
          assert.isAtLeast(duplicates, 0)
        }).pipe(Effect.provide(clientLayer(fleet)))
      }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)),
    Duration.toMillis("10 minutes")
  )
})
