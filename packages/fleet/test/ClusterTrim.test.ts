import { SingleRunner } from "@effect/cluster"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Transport } from "@tlsrpt/mail"
import { defaultConfig } from "@tlsrpt/reporter"
import { Outbox, ResultStore, Store, SuppressionList } from "@tlsrpt/store"
import { Clock, Context, Duration, Effect, Fiber, Layer, Logger, LogLevel, Redacted, TestClock } from "effect"
import { ClusterTrim, FleetCluster, ReportKey, ReportRound } from "../src/index.js"
import * as FleetPg from "./FleetPg.js"
import { DAY, dkimPem, lookupLayer, mailLayer, rows } from "./FleetEnv.js"

const N = 4
const config = { ...defaultConfig, https: false, temporaryRetries: [] }

/** The store's ports on PostgreSQL, without its SqlClient. */
const storePorts = (url: string) =>
  Layer.effectContext(
    Effect.map(Effect.context<Store.Store>(), Context.pick(ResultStore, SuppressionList, Outbox))
  ).pipe(Layer.provide(Store.layerPg({ url })))

/** The fleet's entities on one runner whose cluster tables (and store) are in a fresh PostgreSQL schema. */
const fleet = (url: string) =>
  Effect.map(dkimPem, (pair) =>
    Layer.mergeAll(ReportKey.layer(config), ReportRound.layer(config, { concurrency: 8 })).pipe(
      Layer.provideMerge(
        SingleRunner.layer({ runnerStorage: "sql", shardingConfig: { shardLockDisableAdvisory: true } })
      ),
      // the cluster's own client (FleetCluster.sqlPg), as the worker has; the store has its own
      Layer.provideMerge(FleetCluster.sqlPg(Redacted.make(url), { leaseSeconds: FleetCluster.DEFAULT_LEASE_SECONDS })),
      Layer.provideMerge(
        Layer.mergeAll(storePorts(url), lookupLayer(N), mailLayer(pair.privateKeyPem), Transport.layerTest())
      )
    )
  )

/** Request ids in the cluster tables: messages (with their processed flag) and replies. */
const tables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const messages = yield* sql<{ request_id: string; kind: number; processed: boolean }>`
    SELECT request_id::text AS request_id, kind, processed FROM cluster_messages ORDER BY id`
  const replies = yield* sql<{ request_id: string }>`SELECT request_id::text AS request_id FROM cluster_replies`
  return { messages, replies: replies.map((r) => r.request_id) }
})

/**
 * A request minted `ageDays` ago for an entity no runner serves: its request row (`processed`), an
 * interrupt row (`interrupt`: its processed flag) and an exit reply when processed.
 */
const insertAged = (seq: number, ageDays: number, processed: boolean, interrupt?: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Clock.currentTimeMillis
    const id = (ClusterTrim.idMintedAt(now - Duration.toMillis(Duration.days(ageDays))) + BigInt(seq)).toString()
    const row = (rowId: string, kind: number, done: boolean) => ({
      id: rowId,
      message_id: kind === 0 ? `aged-${seq}` : null,
      shard_id: "elsewhere:1",
      entity_type: "Aged",
      entity_id: `aged-${seq}`,
      kind,
      tag: kind === 0 ? "Run" : null,
      payload: "{}",
      headers: "{}",
      processed: done,
      request_id: id
    })
    yield* sql`INSERT INTO cluster_messages ${sql.insert(row(id, 0, processed))}`
    if (interrupt !== undefined) {
      yield* sql`INSERT INTO cluster_messages ${sql.insert(row((BigInt(id) + BigInt(1000)).toString(), 2, interrupt))}`
    }
    if (processed) {
      const replyId = (BigInt(id) + BigInt(2000)).toString()
      yield* sql`INSERT INTO cluster_replies ${sql.insert({ id: replyId, kind: 0, request_id: id, payload: "{}" })}`
      yield* sql`UPDATE cluster_messages SET last_reply_id = ${replyId} WHERE id = ${id}`
    }
    return id
  })

describe.skipIf(!FleetPg.available())("trimming the cluster tables on PostgreSQL (docs/design.md#fleet-trim)", () => {
  it.live(
    "the cluster's own client reads snowflake ids whole; the store's, which reads BIGINT as a number, does not",
    () =>
      Effect.gen(function* () {
        const url = yield* FleetPg.fresh
        const id = (ClusterTrim.idMintedAt(Date.UTC(2026, 0, 1)) + BigInt(4097)).toString()
        const read = <E>(layer: Layer.Layer<SqlClient.SqlClient, E>) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: unknown }>`SELECT ${id}::bigint AS id`).pipe(
            Effect.map((rows) => String(rows[0]?.id)),
            Effect.provide(layer)
          )
        assert.notStrictEqual(yield* read(Store.layerPg({ url })), id)
        assert.strictEqual(
          yield* read(FleetCluster.sqlPg(Redacted.make(url), { leaseSeconds: FleetCluster.DEFAULT_LEASE_SECONDS })),
          id
        )
      }).pipe(Effect.scoped)
  )

  it.live(
    "processed requests older than the retention go with their replies; new or unprocessed ones stay; rounds still run",
    () =>
      Effect.gen(function* () {
        const url = yield* FleetPg.fresh
        yield* Effect.gen(function* () {
          yield* (yield* ResultStore).addResults(rows(N))
          const first = yield* ReportRound.request(new ReportRound.RunRound({ id: "t-1", day: DAY, pace: false }))
          assert.strictEqual(first.reports, N + N)
          const round = yield* tables
          // the round's request and one request per key, all processed, each with its reply
          assert.isTrue(round.messages.length > N && round.messages.every((m) => m.processed))
          assert.strictEqual(round.replies.length, round.messages.length)

          const oldDone = yield* insertAged(1, 8, true)
          const oldPending = yield* insertAged(2, 30, false)
          const oldInterrupted = yield* insertAged(3, 30, true, false)
          const oldDoneInterrupt = yield* insertAged(4, 9, true, true)
          const recentDone = yield* insertAged(5, 6, true)

          const trimmed = yield* ClusterTrim.trim(ClusterTrim.DEFAULT_RETAIN_DAYS)
          assert.deepStrictEqual(trimmed, { messages: 3, replies: 2 })
          const after = yield* tables
          const ids = new Set(after.messages.map((m) => m.request_id))
          assert.isFalse(ids.has(oldDone) || ids.has(oldDoneInterrupt))
          assert.isFalse(after.replies.includes(oldDone) || after.replies.includes(oldDoneInterrupt))
          // unprocessed (the request, or a row of it): kept whole, its reply too
          assert.isTrue(ids.has(oldPending) && ids.has(oldInterrupted) && ids.has(recentDone))
          assert.isTrue(after.replies.includes(oldInterrupted) && after.replies.includes(recentDone))
          // the round of minutes ago is within the retention
          assert.deepStrictEqual(
            after.messages.filter((m) => round.messages.some((r) => r.request_id === m.request_id)),
            round.messages
          )
          // trimming again finds nothing more
          assert.deepStrictEqual(yield* ClusterTrim.trim(ClusterTrim.DEFAULT_RETAIN_DAYS), { messages: 0, replies: 0 })

          // everything processed up to a minute from now goes: the round's rows too; the pending stay
          const all = yield* ClusterTrim.trimBefore((yield* Clock.currentTimeMillis) + 60_000)
          assert.strictEqual(all.messages, round.messages.length + 1)
          const left = yield* tables
          assert.deepStrictEqual(
            left.messages.map((m) => m.request_id).sort(),
            [oldPending, oldInterrupted, oldInterrupted].sort()
          )
          assert.deepStrictEqual(left.replies, [oldInterrupted])

          // a round after the trim runs and answers
          yield* (yield* ResultStore).addResults(rows(N, "2025-01-10" as typeof DAY))
          const second = yield* ReportRound.request(
            new ReportRound.RunRound({ id: "t-2", day: "2025-01-10" as typeof DAY, pace: false })
          )
          assert.strictEqual(second.reports, N + N)
          assert.strictEqual(yield* (yield* Outbox).count(), 2 * (N + N))
        }).pipe(Effect.provide(Layer.unwrapEffect(fleet(url))))
      }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)),
    60_000
  )
})

describe("the trim loop on SingleRunner (SQLite) and TestClock", () => {
  it.scoped(
    "a runner's loop trims a round's rows once they are older than cluster.retainDays, and rounds run after it",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.UTC(2025, 0, 10, 12))
        const pair = yield* dkimPem
        const stages = yield* Layer.build(
          Layer.mergeAll(Store.layerMemory, lookupLayer(N), mailLayer(pair.privateKeyPem), Transport.layerTest())
        )
        const count = Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ n: number }>`SELECT count(*) AS n FROM cluster_messages`.pipe(Effect.map((r) => Number(r[0]?.n)))
        ).pipe(Effect.provide(stages))
        /** Runs the round `id` of `day` on a runner of its own, stepping the clock until it answers. */
        const round = (id: string, day: typeof DAY) =>
          Effect.gen(function* () {
            yield* (yield* ResultStore).addResults(rows(N, day))
            const fiber = yield* Effect.fork(ReportRound.request(new ReportRound.RunRound({ id, day, pace: false })))
            for (let i = 0; i < 120 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
            return yield* Fiber.join(fiber)
          }).pipe(
            Effect.provide(
              Layer.mergeAll(ReportKey.layer(config), ReportRound.layer(config, { concurrency: 8 })).pipe(
                Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
                Layer.provideMerge(Layer.succeedContext(stages))
              )
            ),
            Effect.scoped
          )
        assert.strictEqual((yield* round("t-1", DAY)).reports, N + N)
        const rowsOfRound = yield* count
        assert.isTrue(rowsOfRound > N)
        // the loop alone (the cluster's own loops poll every second, too often to step through days)
        yield* Effect.gen(function* () {
          // six days on: within the retention, the hourly trims keep them
          yield* TestClock.adjust("6 days")
          assert.strictEqual(yield* count, rowsOfRound)
          // past seven days the next hourly trim deletes them
          yield* TestClock.adjust("1 day")
          yield* TestClock.adjust("1 hour")
          assert.strictEqual(yield* count, 0)
        }).pipe(
          Effect.provide(
            ClusterTrim.layer(ClusterTrim.DEFAULT_RETAIN_DAYS).pipe(Layer.provide(Layer.succeedContext(stages)))
          ),
          Effect.scoped
        )
        assert.strictEqual((yield* round("t-2", "2025-01-17" as typeof DAY)).reports, N + N)
        assert.strictEqual(yield* count, rowsOfRound)
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)),
    60_000
  )
})
