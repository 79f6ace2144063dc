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
import * as SqlClient from "@effect/sql/SqlClient"
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
        FLEET_LEASE_S: String(LEASE_S),
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
    Layer.provideMerge(FleetCluster.sqlPg(Redacted.make(fleet.url), { leaseSeconds: LEASE_S })),
    Layer.merge(
      Layer.effectContext(Effect.map(Effect.context<Store.Store>(), Context.pick(ResultStore, Outbox))).pipe(
        Layer.provide(Store.layerPg({ url: fleet.url }))
      )
    )
  )

/** Polls `check` every 250 ms for up to 5 minutes; a failed check (PostgreSQL restarting) counts as not yet. */
const waitFor = <A, E, R>(what: string, check: Effect.Effect<A | undefined, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1200; i++) {
      const a = yield* Effect.orElseSucceed(check, () => undefined)
      if (a !== undefined) return a
      yield* Effect.sleep("250 millis")
    }
    return yield* Effect.dieMessage(`gave up waiting for ${what}`)
  })

/** The runners' shard lease (FLEET_LEASE_S): a runner silent for longer loses its shards. */
const LEASE_S = 15
const status = ClusterStatus.read({ shards: SHARDS, lockExpirationSeconds: LEASE_S })

const messageId = (raw: Uint8Array) => /^Message-ID:\s*(\S+)/im.exec(Buffer.from(raw).toString("latin1"))?.[1] ?? ""

/** The address of the runner that owns the round's shard (where the round runs). */
const roundOwner = Effect.gen(function* () {
  const shard = (yield* Sharding.Sharding).getShardId(EntityId.make(DAY), "default")
  const owner = (yield* status).runners.find(
    (r) =>
      r.alive &&
      r.shards.split(",").some((range) => {
        const [a, b] = range.split("-").map(Number)
        return shard.id >= (a ?? 0) && shard.id <= (b ?? a ?? 0)
      })
  )
  assert.isDefined(owner)
  return owner?.address ?? ""
})

/**
 * Three delivering runners; a round is requested, and once a quarter of its reports are queued
 * `fault` strikes. Then: the round's summary has every key sent once, none kept; the outbox holds one
 * message per report; every message is delivered, each report arrives, and no more than
 * `maxDuplicates` arrive twice (same Message-ID).
 */
const roundSurvives = (
  url: string,
  fault: (fleet: Fleet) => Effect.Effect<void, unknown, Sharding.Sharding | SqlClient.SqlClient | Outbox>,
  maxDuplicates: number
) =>
  Effect.gen(function* () {
    const fleet = yield* makeFleet(url)
    const sink = yield* SmtpSink.make()
    // every runner delivers; an outbox claim keeps a message to one runner
    for (const port of yield* FleetPg.freePorts(3))
      yield* startRunner(fleet, port, {
        FLEET_DELIVERY: "1",
        FLEET_DELIVERY_CONCURRENCY: String(CONCURRENCY),
        FLEET_SMTP_URL: sink.url
      })
    yield* Effect.gen(function* () {
      yield* waitFor(
        "three runners",
        Effect.map(status, (s) => (s.runners.filter((r) => r.alive && r.shardCount > 0).length === 3 ? s : undefined))
      )
      // the runners refresh their assignments every few seconds: let them agree first
      yield* Effect.sleep("10 seconds")
      const store = yield* ResultStore
      const round = yield* ReportRound.request(new ReportRound.RunRound({ id: "fault-1", day: DAY, pace: false })).pipe(
        Effect.fork
      )
      yield* waitFor(
        "a quarter of the reports",
        Effect.map((yield* Outbox).count(), (n) => (n >= KEYS / 4 ? n : undefined))
      )
      yield* fault(fleet)

      const summary = yield* Fiber.join(round)
      // every key is sent or was already sent (by an earlier run of the round), none kept
      assert.strictEqual(summary.keys.length, KEYS)
      assert.deepStrictEqual(
        summary.kept.map((k) => `${k.policyDomain}: ${k.outcome} ${k.detail ?? ""}`),
        []
      )
      for (const k of summary.keys) assert.include(["sent", "already-sent"], k.outcome)

      const outbox = yield* (yield* Outbox).list()
      assert.strictEqual(outbox.length, KEYS)
      assert.strictEqual(new Set(outbox.map((m) => m.reportId)).size, KEYS)
      assert.deepStrictEqual(yield* store.listResults(), [])

      // the runners deliver everything; claims of a runner that stopped expire and are taken over
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
      // a report arrives twice only when its SMTP transaction was in flight when the fault struck,
      // and then with the same Message-ID (the set above has exactly the outbox's ids)
      const duplicates = received.length - KEYS
      assert.isAtMost(duplicates, maxDuplicates)
      assert.isAtLeast(duplicates, 0)
    }).pipe(Effect.provide(clientLayer(fleet)))
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

describe.skipIf(!FleetPg.available())("fleet on PostgreSQL, three runner processes", () => {
  it.live(
    "SIGKILL of the runner running the round: every report queued exactly once and delivered, duplicates only within its delivery concurrency",
    () =>
      Effect.gen(function* () {
        const url = yield* FleetPg.fresh
        yield* roundSurvives(
          url,
          (fleet) =>
            Effect.gen(function* () {
              fleet.runners.get(yield* roundOwner)?.kill("SIGKILL")
              assert.isBelow(yield* (yield* Outbox).count(), KEYS)
            }),
          // the killed runner's SMTP transactions in flight
          CONCURRENCY
        )
      }).pipe(Effect.scoped),
    Duration.toMillis("10 minutes")
  )

  // A reply whose save fell into the outage was given up by @effect/cluster while its request stayed
  // in progress, and the round waited on it forever (two of three CI runs; one of five here); it is
  // now saved again (FleetCluster.savingRepliesAgain, docs/design.md#fleet-faults).
  it.live(
    "PostgreSQL restarted during the round: the round resumes and finishes, every report queued exactly once and delivered",
    () =>
      Effect.gen(function* () {
        // a server of its own: restarting the shared one would cut every other suite's connections
        const pg = yield* FleetPg.privateServer
        yield* roundSurvives(
          pg.url,
          () =>
            Effect.gen(function* () {
              // down for 3 s: every connection of the runners and of this client is cut
              yield* pg.restart("3 seconds")
              // the runners reconnect and go on queueing
              const after = yield* waitFor(
                "reports queued after the restart",
                Effect.map((yield* Outbox).count(), (n) => (n > KEYS / 4 ? n : undefined))
              )
              assert.isAbove(after, KEYS / 4)
            }),
          // every runner's SMTP transactions in flight when their outcome could not be recorded, twice:
          // one run in nine had one more on a runner, a record cancelled as its pool reconnected
          // (docs/design.md#fleet-faults); the issue asks for none lost, which the test asserts whole
          2 * 3 * CONCURRENCY
        )
      }).pipe(Effect.scoped),
    Duration.toMillis("10 minutes")
  )

  // The stopped runner's open transactions (the cluster's reply saving, the store's mark-sent + outbox)
  // are ended by the server after a third of the lease (`idleInTransactionMillis`), before its shards
  // move: before, their row locks blocked the new owners' reset of the shards' messages, and the
  // round's message stayed hidden for ten minutes (docs/design.md#fleet-faults).
  it.live(
    "a runner partitioned (SIGSTOP past its lease): its shards move, the round finishes, and resumed it does not resend what another runner sent",
    () =>
      Effect.gen(function* () {
        const url = yield* FleetPg.fresh
        yield* roundSurvives(
          url,
          (fleet) =>
            Effect.gen(function* () {
              const address = yield* roundOwner
              const stopped = fleet.runners.get(address)
              stopped?.kill("SIGSTOP")
              // its heartbeat goes stale and its shard leases expire: the others take its shards
              yield* waitFor(
                "the stopped runner's shards moved",
                Effect.map(status, (s) =>
                  s.runners.filter((r) => r.alive && r.shardCount > 0).length === 2 &&
                  s.runners.every((r) => r.address !== address || r.shardCount === 0)
                    ? s
                    : undefined
                )
              )
              // in the lock table: its leases expired and the other two hold every shard's
              const sql = yield* SqlClient.SqlClient
              yield* waitFor(
                "every shard leased by the other runners",
                Effect.map(
                  sql<{ address: string; n: number }>`SELECT address, count(*)::int AS n FROM cluster_locks
                    WHERE acquired_at > NOW() - make_interval(secs => ${LEASE_S}) GROUP BY address`,
                  (rows) =>
                    rows.every((r) => r.address !== address) && rows.reduce((n, r) => n + r.n, 0) === SHARDS
                      ? rows
                      : undefined
                )
              )
              // the round goes on without it (it ran the round: another runner runs it again)
              const before = yield* (yield* Outbox).count()
              yield* waitFor(
                "reports queued while it is stopped",
                Effect.map((yield* Outbox).count(), (n) => (n > before ? n : undefined))
              )
              stopped?.kill("SIGCONT")
            }),
          // the stopped runner's SMTP transactions in flight (its claims expired and were taken over)
          CONCURRENCY
        )
      }).pipe(Effect.scoped),
    Duration.toMillis("10 minutes")
  )
})
