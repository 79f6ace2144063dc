/**
 * `Outbox` on any `@effect/sql` client, in portable SQL (`Migrations.ts` 3_outbox, 5_outbox_lease, 6_outbox_due);
 * what differs between databases comes from the `Dialect`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Effect, Layer } from "effect"
import type { Dialect } from "./Dialect.js"
import { DirectStatement } from "./DirectStatement.js"
import { type NewOutboxMessage, Outbox, type OutboxStatus } from "./Outbox.js"
import * as OutboxRecords from "./OutboxRecords.js"
import { OutboxSignal } from "./OutboxSignal.js"
import { fromSqlError } from "./StoreError.js"

/** The outbox on the ambient `SqlClient`; the schema must be migrated (`Migrations.run`). */
export const make = (dialect: Dialect) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const signal = yield* OutboxSignal

    // The signal is raised after the commit: a listener woken before it would find nothing due.
    const enqueue = Effect.fn("Outbox.enqueue")(function* (messages: ReadonlyArray<NewOutboxMessage>) {
      if (messages.length === 0) return []
      const now = yield* Clock.currentTimeMillis
      const ids = yield* sql.withTransaction(OutboxRecords.insert(sql, messages, now))
      yield* signal.raise
      return ids
    }, fromSqlError("Outbox.enqueue"))

    const selectOutbox = sql.literal(`SELECT ${OutboxRecords.COLUMNS} FROM outbox`)

    // One statement selects and leases. SQLite runs it under its write lock; PostgreSQL skips rows
    // another claim holds locked (`Dialect.skipLocked`) and re-checks the outer WHERE on the rows it
    // updates, so a row is never claimed twice while its lease runs. The pick is a MATERIALIZED CTE, run
    // once: as an `IN (SELECT …)` PostgreSQL may re-run it per row, and SKIP LOCKED then skips the rows
    // this very statement just leased and picks the next ones, past the limit.
    const claimDue = Effect.fn("Outbox.claimDue")(function* (
      now: Date,
      limit: number,
      lease: { readonly owner: string; readonly until: Date }
    ) {
      const at = now.getTime()
      const records = yield* sql<OutboxRecords.OutboxRecord>`WITH picked AS MATERIALIZED (SELECT id FROM outbox
          WHERE status = 'queued' AND next_attempt_at <= ${at} AND (lease_until IS NULL OR lease_until <= ${at})
          ORDER BY next_attempt_at, id LIMIT ${limit} ${sql.literal(dialect.skipLocked)})
        UPDATE outbox SET lease_owner = ${lease.owner}, lease_until = ${lease.until.getTime()}
        WHERE id IN (SELECT id FROM picked) AND status = 'queued' AND (lease_until IS NULL OR lease_until <= ${at})
        RETURNING ${sql.literal(OutboxRecords.COLUMNS)}`
      // RETURNING gives no order.
      return records
        .map(OutboxRecords.toMessage)
        .sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || a.id - b.id)
    }, fromSqlError("Outbox.claimDue"))

    const releaseClaim = Effect.fn("Outbox.releaseClaim")(function* (id: number, owner: string) {
      yield* sql`UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE id = ${id} AND lease_owner = ${owner}`
    }, fromSqlError("Outbox.releaseClaim"))

    const requeue = Effect.fn("Outbox.requeue")(function* (which: { readonly id: number } | "failed", at: Date) {
      const t = at.getTime()
      const rows = yield* which === "failed"
        ? sql<{ readonly id: number }>`UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = ${t},
          lease_owner = NULL, lease_until = NULL, updated = ${t} WHERE status = 'failed' RETURNING id`
        : sql<{ readonly id: number }>`UPDATE outbox SET status = 'queued',
          attempts = CASE WHEN status = 'failed' THEN 0 ELSE attempts END, next_attempt_at = ${t}, updated = ${t}
          WHERE id = ${which.id} AND status IN ('failed', 'queued') RETURNING id`
      if (rows.length > 0) yield* signal.raise
      return rows.map((r) => r.id).sort((a, b) => a - b)
    }, fromSqlError("Outbox.requeue"))

    // A queued message can be claimed once its attempt is due and no other lease holds it
    // (`claimDue`'s WHERE), so it is due at the later of the two.
    const nextDueAt = Effect.fn("Outbox.nextDueAt")(function* () {
      const rows = yield* sql<{ readonly due: number | string | null }>`SELECT MIN(CASE
          WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END) AS due
        FROM outbox WHERE status = 'queued'`
      const due = rows[0]?.due
      return due === null || due === undefined ? undefined : new Date(Number(due))
    }, fromSqlError("Outbox.nextDueAt"))

    // The successful attempt counts as an attempt too. Recording an outcome ends the lease. The one
    // statement every delivered message runs: no span and no generator of its own around the
    // statement's (`sql.execute`), which says what ran (the `round` bench, README "The round's main
    // thread").
    // Where the database has a `DirectStatement` (SQLite), the statement is compiled once and run
    // through it, without `@effect/sql`'s steps per statement.
    const markDeliveredError = fromSqlError("Outbox.markDelivered")
    const markDeliveredSql = (id: number, at: number) =>
      sql`UPDATE outbox SET status = 'delivered', attempts = attempts + 1, updated = ${at},
        lease_owner = NULL, lease_until = NULL WHERE id = ${id}`
    const direct = yield* Effect.serviceOption(DirectStatement)
    const markDeliveredText = markDeliveredSql(0, 0).compile()[0]
    const markDelivered = (id: number, at: Date) =>
      markDeliveredError(
        Effect.asVoid(
          direct._tag === "Some"
            ? direct.value.run(markDeliveredText, [at.getTime(), id])
            : markDeliveredSql(id, at.getTime())
        )
      )

    const markAttemptFailed = Effect.fn("Outbox.markAttemptFailed")(function* (
      id: number,
      failure: { readonly error: string; readonly at: Date; readonly nextAttemptAt: Date | undefined }
    ) {
      const at = failure.at.getTime()
      if (failure.nextAttemptAt === undefined) {
        yield* sql`UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ${failure.error},
          updated = ${at}, lease_owner = NULL, lease_until = NULL WHERE id = ${id}`
      } else {
        yield* sql`UPDATE outbox SET attempts = attempts + 1, last_error = ${failure.error},
          next_attempt_at = ${failure.nextAttemptAt.getTime()}, updated = ${at}, lease_owner = NULL,
          lease_until = NULL WHERE id = ${id}`
      }
    }, fromSqlError("Outbox.markAttemptFailed"))

    const list = Effect.fn("Outbox.list")(function* (filter?: { readonly status?: OutboxStatus | undefined }) {
      const records = yield* sql<OutboxRecords.OutboxRecord>`${selectOutbox}
        ${filter?.status !== undefined ? sql`WHERE status = ${filter.status}` : sql.literal("")} ORDER BY id`
      return records.map(OutboxRecords.toMessage)
    }, fromSqlError("Outbox.list"))

    const count = Effect.fn("Outbox.count")(function* (status?: OutboxStatus) {
      const rows = yield* sql<{ readonly n: number | bigint }>`SELECT COUNT(*) AS n FROM outbox ${
        status !== undefined ? sql`WHERE status = ${status}` : sql.literal("")
      }`
      return Number(rows[0]?.n ?? 0)
    }, fromSqlError("Outbox.count"))

    return {
      enqueue,
      claimDue,
      releaseClaim,
      requeue,
      nextDueAt,
      markDelivered,
      markAttemptFailed,
      list,
      count
    }
  })

export const layer = (dialect: Dialect): Layer.Layer<Outbox, never, SqlClient.SqlClient | OutboxSignal> =>
  Layer.effect(Outbox, make(dialect))
