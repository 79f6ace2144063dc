/**
 * SQLite transactions that take the write lock at BEGIN (`BEGIN IMMEDIATE`).
 *
 * `@effect/sql-sqlite-node` opens every transaction with a plain (deferred) `BEGIN`: it reads under a
 * shared lock and upgrades to a write lock at its first write. When another process committed in
 * between, SQLite answers the upgrade with SQLITE_BUSY at once and the busy timeout does not help (a
 * retry could not see a consistent snapshot: https://www.sqlite.org/lang_transaction.html, "BEGIN
 * IMMEDIATE"). Every transaction of the store writes, so each takes the lock up front and a second
 * writer process waits for it under `busy_timeout` instead of failing with "database is locked".
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Scope } from "effect"

const none = undefined

/**
 * Makes `client.withTransaction` begin with `BEGIN IMMEDIATE` (savepoints, commit and rollback as the
 * library spells them). The change is made in place: the client is the driver's one object, held by
 * both its `SqlClient` and `SqliteClient` tags, and must stay the same object for both.
 */
export const immediate = <C extends SqlClient.SqlClient>(client: C): C =>
  Object.assign(client, {
    withTransaction: SqlClient.makeWithTransaction({
      transactionTag: SqlClient.TransactionConnection,
      spanAttributes: [["db.system.name", "sqlite"]],
      acquireConnection: Effect.flatMap(Scope.make(), (scope) =>
        Effect.map(Scope.extend(client.reserve, scope), (conn) => [scope, conn] as const)
      ),
      begin: (conn) => conn.executeUnprepared("BEGIN IMMEDIATE", [], none),
      savepoint: (conn, id) => conn.executeUnprepared(`SAVEPOINT effect_sql_${id}`, [], none),
      commit: (conn) => conn.executeUnprepared("COMMIT", [], none),
      rollback: (conn) => conn.executeUnprepared("ROLLBACK", [], none),
      rollbackSavepoint: (conn, id) => conn.executeUnprepared(`ROLLBACK TO SAVEPOINT effect_sql_${id}`, [], none)
    })
  })
