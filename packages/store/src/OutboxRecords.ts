/**
 * The `outbox` table's rows as the SQL ports read and write them: `SqlOutbox` and
 * `SqlResultStore.markSentAndEnqueueAll` (which enqueues in the round's transaction) share them.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Day } from "@tlsrpt/core"
import { Effect } from "effect"
import type { NewOutboxMessage, OutboxMessage, OutboxStatus } from "./Outbox.js"

/** The columns of `OutboxRecord`, for SELECT and RETURNING. */
export const COLUMNS = `id, kind, destination, envelope_from, payload, report_id, policy_domain, day, status, attempts,
  next_attempt_at, last_error, created, updated`

export interface OutboxRecord {
  readonly id: number
  readonly kind: string
  readonly destination: string
  readonly envelope_from: string
  readonly payload: Uint8Array
  readonly report_id: string
  readonly policy_domain: string
  readonly day: string
  readonly status: string
  readonly attempts: number
  readonly next_attempt_at: number
  readonly last_error: string | null
  readonly created: number
  readonly updated: number
}

/** BLOBs come back as `Buffer`s; hand out plain `Uint8Array` views (no copy) so callers compare equal. */
const bytes = (u: Uint8Array): Uint8Array =>
  Object.getPrototypeOf(u) === Uint8Array.prototype ? u : new Uint8Array(u.buffer, u.byteOffset, u.byteLength)

export const toMessage = (r: OutboxRecord): OutboxMessage => ({
  id: r.id,
  kind: r.kind as OutboxMessage["kind"],
  destination: r.destination,
  envelopeFrom: r.envelope_from,
  payload: bytes(r.payload),
  reportId: r.report_id,
  policyDomain: r.policy_domain,
  day: r.day as Day.Day,
  status: r.status as OutboxStatus,
  attempts: r.attempts,
  nextAttemptAt: new Date(r.next_attempt_at),
  lastError: r.last_error ?? undefined,
  created: new Date(r.created),
  updated: new Date(r.updated)
})

/** The row a new message is stored as: queued, due now. */
const record = (m: NewOutboxMessage, now: number) => ({
  kind: m.kind,
  destination: m.destination,
  envelope_from: m.envelopeFrom,
  payload: m.payload,
  report_id: m.reportId,
  policy_domain: m.policyDomain,
  day: m.day,
  status: "queued",
  attempts: 0,
  next_attempt_at: now,
  created: now,
  updated: now
})

const insertOne = (sql: SqlClient.SqlClient, m: NewOutboxMessage, now: number) =>
  sql`INSERT INTO outbox ${sql.insert(record(m, now))} ON CONFLICT (report_id, destination) DO NOTHING`

/** Inserts each message unless its (report-id, destination) is there already; the ids in input order. */
export const insert = (sql: SqlClient.SqlClient, messages: ReadonlyArray<NewOutboxMessage>, now: number) =>
  Effect.forEach(messages, (m) =>
    Effect.gen(function* () {
      yield* insertOne(sql, m, now)
      const [row] = yield* sql<{ readonly id: number }>`SELECT id FROM outbox
      WHERE report_id = ${m.reportId} AND destination = ${m.destination}`
      return row!.id
    })
  )

/** Rows per multi-row INSERT: 12 parameters each, well under SQLite's and PostgreSQL's limits. */
const INSERT_ROWS = 256

/**
 * As `insert`, without reading the ids back (the batched round does not need them): one multi-row
 * INSERT per INSERT_ROWS messages rather than one statement each; ids follow the input order.
 */
export const insertAll = (sql: SqlClient.SqlClient, messages: ReadonlyArray<NewOutboxMessage>, now: number) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(messages.length / INSERT_ROWS) }, (_, i) =>
      messages.slice(i * INSERT_ROWS, (i + 1) * INSERT_ROWS)
    ),
    (chunk) =>
      sql`INSERT INTO outbox ${sql.insert(chunk.map((m) => record(m, now)))} ON CONFLICT (report_id, destination) DO NOTHING`,
    { discard: true }
  )
