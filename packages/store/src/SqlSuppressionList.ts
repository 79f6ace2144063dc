/**
 * `SuppressionList` on any `@effect/sql` client, in portable SQL (`Migrations.ts` 2_suppressions).
 * Addresses are normalised on write and on lookup (docs/design.md#normalised-suppression-addresses).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SuppressionTarget } from "@tlsrpt/core"
import { Clock, Effect, Either, Layer } from "effect"
import type { Dialect } from "./Dialect.js"
import { fromSqlError, InvalidAddress } from "./StoreError.js"
import { type Suppression, SuppressionList } from "./SuppressionList.js"

interface SuppressionRecord {
  readonly id: number
  readonly address: string
  readonly until: number
  readonly comment: string
  readonly inserted: number
}

const toSuppression = (r: SuppressionRecord): Suppression => ({
  id: r.id,
  address: r.address,
  until: new Date(r.until),
  comment: r.comment,
  inserted: new Date(r.inserted)
})

// A mail address or an https reporting URI, in one normal form (docs/design.md#suppression).
const normalizeAddress = (address: string): Either.Either<string, InvalidAddress> =>
  Either.mapLeft(SuppressionTarget.normalize(address), (e) => new InvalidAddress({ address, reason: e.reason }))

/** The list on the ambient `SqlClient`; the schema must be migrated (`Migrations.run`). */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const selectSuppression = (address: string) =>
    sql<SuppressionRecord>`SELECT id, address, until, comment, inserted FROM suppressions WHERE address = ${address}`

  // docs/design.md#suppression-list; the address normalised on write
  // (docs/design.md#normalised-suppression-addresses). Adding an address again replaces its until and comment.
  const add = Effect.fn("SuppressionList.add")(function* (entry: {
    readonly address: string
    readonly until: Date
    readonly comment?: string | undefined
  }) {
    const address = yield* normalizeAddress(entry.address)
    const now = yield* Clock.currentTimeMillis
    const [row] = yield* sql.withTransaction(
      Effect.zipRight(
        sql`INSERT INTO suppressions ${sql.insert({
          address,
          until: entry.until.getTime(),
          comment: entry.comment ?? "",
          inserted: now
        })} ON CONFLICT (address) DO UPDATE SET until = excluded.until, comment = excluded.comment`,
        selectSuppression(address)
      )
    )
    return toSuppression(row!)
  }, fromSqlError("SuppressionList.add"))

  const list = sql<SuppressionRecord>`SELECT id, address, until, comment, inserted
    FROM suppressions ORDER BY id DESC`.pipe(
    Effect.map((records) => records.map(toSuppression)),
    fromSqlError("SuppressionList.list"),
    Effect.withSpan("SuppressionList.list")
  )

  const remove = Effect.fn("SuppressionList.remove")(function* (address: string) {
    const normalized = yield* normalizeAddress(address)
    const deleted = yield* sql`DELETE FROM suppressions WHERE address = ${normalized} RETURNING id`
    return deleted.length > 0
  }, fromSqlError("SuppressionList.remove"))

  // docs/design.md#suppression-and-queueing with both sides normalised. An address that does not parse cannot be on the
  // list, since `add` refuses it.
  const isSuppressed = Effect.fn("SuppressionList.isSuppressed")(function* (address: string, at: Date) {
    const normalized = normalizeAddress(address)
    if (Either.isLeft(normalized)) return false
    const rows = yield* sql`SELECT id FROM suppressions WHERE address = ${normalized.right} AND until > ${at.getTime()}`
    return rows.length > 0
  }, fromSqlError("SuppressionList.isSuppressed"))

  return { add, list, remove, isSuppressed }
})

/** The port on the ambient `SqlClient` (any dialect: nothing here differs between them). */
export const layer = (_dialect: Dialect): Layer.Layer<SuppressionList, never, SqlClient.SqlClient> =>
  Layer.effect(SuppressionList, make)
