/**
 * Trimming the cluster tables (docs/design.md#fleet-trim). @effect/cluster keeps every persisted
 * message in `cluster_messages` and its replies in `cluster_replies` forever (it deletes only when an
 * entity is cleared): about two rows per policy domain per round. A runner deletes, once an hour,
 * every request whose rows are all processed and older than the retention, with its replies. An
 * unprocessed row keeps its whole request (the request, its interrupts and acks, its replies), so
 * nothing a pending request or a waiting client reads is ever deleted.
 */
import { Snowflake } from "@effect/cluster"
import * as SqlClient from "@effect/sql/SqlClient"
import { Supervise } from "@tlsrpt/core"
import { Clock, Duration, Effect, Layer, Schedule } from "effect"

/** Days processed requests stay (the `cluster.retainDays` default). */
export { DEFAULT_RETAIN_DAYS } from "./ClusterConfig.js"

/** How often a runner trims. */
export const TRIM_INTERVAL = Duration.hours(1)

/** What one trim deleted. */
export interface Trimmed {
  readonly messages: number
  readonly replies: number
}

/**
 * The smallest id @effect/cluster mints at `millis`: its ids are snowflakes, the milliseconds since
 * 2025-01-01 shifted left 22 bits, so a request id below it was minted earlier. The tables carry no
 * other time of creation (`last_read` is when a runner last picked the row up).
 */
export const idMintedAt = (millis: number): bigint =>
  BigInt(Math.max(0, Math.floor(millis) - Snowflake.constEpochMillis)) << BigInt(22)

// Only one runner trims at a time (the others skip this hour): concurrent DELETEs over the same rows
// could deadlock. A transaction-scoped lock, released at COMMIT; it never holds shards.
const TRIM_LOCK = 0x746c7372

/**
 * Deletes the requests minted before `before` whose rows are all processed, and their replies.
 * One statement, one snapshot: a request that gets an unprocessed row meanwhile is kept whole.
 */
export const trimBefore = (before: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const cutoff = idMintedAt(before).toString()
    return yield* sql.onDialectOrElse({
      pg: () =>
        Effect.gen(function* () {
          const [lock] = yield* sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${TRIM_LOCK}) AS locked`
          if (lock?.locked !== true) return { messages: 0, replies: 0 }
          const [row] = yield* sql<{ messages: number; replies: number }>`
            WITH done AS (
              SELECT request_id FROM cluster_messages
              WHERE request_id < ${cutoff}
              GROUP BY request_id
              HAVING bool_and(processed)
            ), r AS (
              DELETE FROM cluster_replies WHERE request_id IN (SELECT request_id FROM done) RETURNING 1
            ), m AS (
              DELETE FROM cluster_messages WHERE request_id IN (SELECT request_id FROM done) RETURNING 1
            )
            SELECT (SELECT count(*) FROM m)::int AS messages, (SELECT count(*) FROM r)::int AS replies`
          return { messages: row?.messages ?? 0, replies: row?.replies ?? 0 }
        }).pipe(sql.withTransaction),
      // SQLite (SingleRunner): one writer at a time, the transaction keeps both deletes one snapshot
      orElse: () =>
        Effect.gen(function* () {
          const done = sql`SELECT request_id FROM cluster_messages WHERE request_id < ${cutoff}
            GROUP BY request_id HAVING max(processed) = 1 AND min(processed) = 1`
          const replies = yield* sql<{
            n: number
          }>`DELETE FROM cluster_replies WHERE request_id IN (${done}) RETURNING 1 AS n`
          const messages = yield* sql<{
            n: number
          }>`DELETE FROM cluster_messages WHERE request_id IN (${done}) RETURNING 1 AS n`
          return { messages: messages.length, replies: replies.length }
        }).pipe(sql.withTransaction)
    })
  }).pipe(Effect.withSpan("ClusterTrim.trimBefore"))

/** One trim with the retention counted back from the clock; logs what it deleted. */
export const trim = (retainDays: number) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const trimmed = yield* trimBefore(now - Duration.toMillis(Duration.days(retainDays)))
    if (trimmed.messages + trimmed.replies > 0) {
      yield* Effect.logInfo(
        `cluster tables trimmed: ${trimmed.messages} messages, ${trimmed.replies} replies older than ${retainDays} days`
      )
    }
    return trimmed
  })

/**
 * The runner's trim loop: at start and every `TRIM_INTERVAL`, supervised (a failed trim, e.g. the
 * database restarting, is logged and tried again later; the tables only grow meanwhile).
 */
export const layer = (retainDays: number) =>
  Layer.scopedDiscard(
    trim(retainDays).pipe(
      Effect.repeat(Schedule.spaced(TRIM_INTERVAL)),
      Supervise.supervise("cluster-trim"),
      Effect.forkScoped
    )
  )
