/**
 * The SQLite `SqlClient` of the store: `@effect/sql`'s client (the same compiler, statements, spans and
 * transactions) on one better-sqlite3 connection, as `@effect/sql-sqlite-node`'s `SqliteClient` makes
 * it, with a cheaper step per statement. That client looks each statement up in an Effect `Cache`
 * (hashing the SQL text, a TTL read of the Clock, an LRU update, a Deferred) and runs it in an Effect
 * of its own: ~30 µs of the round's main thread per statement against ~13 µs for better-sqlite3
 * itself, and a round runs one for every delivered message (README "The round's main thread").
 * Here the prepared statements are in a plain `Map` (least recently used first out) and a statement
 * runs in one synchronous step, and waits for its turn only while a transaction is open. Everything
 * else is as there: one connection, WAL, a transaction holds the connection until it ends, so a
 * statement never runs inside another fiber's transaction.
 */
import { createRequire } from "node:module"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { DirectStatement } from "../DirectStatement.js"

/** The part of better-sqlite3's API used here (the package ships no types, and @types is not installed). */
interface Database {
  prepare(sql: string): PreparedStatement
  pragma(source: string): unknown
  close(): void
}
interface PreparedStatement {
  readonly reader: boolean
  run(...params: ReadonlyArray<unknown>): unknown
  all(...params: ReadonlyArray<unknown>): ReadonlyArray<Record<string, unknown>>
  raw(on: boolean): PreparedStatement
  safeIntegers(on: boolean): PreparedStatement
}
type DatabaseConstructor = new (filename: string, options?: { readonly readonly?: boolean }) => Database

// better-sqlite3 is CommonJS; `require` gives its constructor without an ESM interop default.
const Sqlite = createRequire(import.meta.url)("better-sqlite3") as DatabaseConstructor

/** Prepared statements kept: as `@effect/sql-sqlite-node`'s default. */
const PREPARED = 200

export interface Options {
  readonly filename: string
}

/** The client and its `DirectStatement` on a new connection to `filename`, closed with the scope. */
export const make = (
  options: Options
): Effect.Effect<
  { readonly client: SqlClient.SqlClient; readonly direct: DirectStatement["Type"] },
  never,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function* () {
    // A file that cannot be opened throws, a defect as with `@effect/sql-sqlite-node` (SqliteDatabase
    // turns it into a StoreError naming the file).
    const db = yield* Effect.acquireRelease(
      Effect.sync(() => new Sqlite(options.filename)),
      (db) => Effect.sync(() => db.close())
    )
    db.pragma("journal_mode = WAL")

    const prepared = new Map<string, PreparedStatement>()
    /** The statement of `sql`, prepared once; most recently used last (Map keeps insertion order). */
    const prepare = (sql: string): PreparedStatement => {
      const hit = prepared.get(sql)
      if (hit !== undefined) {
        prepared.delete(sql)
        prepared.set(sql, hit)
        return hit
      }
      const statement = db.prepare(sql)
      if (prepared.size >= PREPARED) prepared.delete(prepared.keys().next().value!)
      prepared.set(sql, statement)
      return statement
    }

    /**
     * Runs `sql` (its cached statement, or one prepared for this run only) in one step: its rows, or
     * for a write [] (`raw`: [better-sqlite3's result]).
     */
    const run = (
      sql: string,
      params: ReadonlyArray<unknown>,
      cached: boolean,
      raw: boolean
    ): Effect.Effect<ReadonlyArray<unknown>, SqlError> =>
      Effect.withFiberRuntime((fiber) => {
        try {
          const s = cached ? prepare(sql) : db.prepare(sql)
          if (Context.get(fiber.currentContext, SqlClient.SafeIntegers)) s.safeIntegers(true)
          if (s.reader) return Exit.succeed(s.all(...params))
          const result = s.run(...params)
          return Exit.succeed(raw ? [result] : [])
        } catch (cause) {
          return Exit.fail(new SqlError({ cause, message: "Failed to execute statement" }))
        }
      })

    const connection: Connection = {
      execute: (sql, params, transformRows) => {
        const rows = run(sql, params, true, false)
        return transformRows ? Effect.map(rows, (r) => transformRows(r as ReadonlyArray<object>)) : rows
      },
      executeRaw: (sql, params) => Effect.map(run(sql, params, true, true), (r) => r[0]),
      executeValues: (sql, params) =>
        Effect.try({
          try: () => {
            const statement = prepare(sql)
            if (!statement.reader) {
              statement.run(...params)
              return []
            }
            statement.raw(true)
            try {
              return statement.all(...params) as unknown as ReadonlyArray<ReadonlyArray<unknown>>
            } finally {
              statement.raw(false)
            }
          },
          catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
        }),
      executeUnprepared: (sql, params, transformRows) => {
        const rows = run(sql, params ?? [], false, false)
        return transformRows ? Effect.map(rows, (r) => transformRows(r as ReadonlyArray<object>)) : rows
      },
      executeStream: () => Effect.dieMessage("executeStream not implemented")
    }

    // One connection: a transaction holds the semaphore's permit until it ends. A statement outside
    // one runs in a single synchronous step, so it only has to wait while a transaction is open
    // (`inTransaction`); `@effect/sql-sqlite-node` took and released the permit for every statement
    // (an asynchronous step of the fiber each time) and, as here, ran the statement after the release.
    const semaphore = yield* Effect.makeSemaphore(1)
    let inTransaction = 0
    const waitForTurn = semaphore.withPermits(1)(Effect.succeed(connection))
    const ready = Effect.succeed(connection)
    const acquirer = Effect.suspend(() => (inTransaction === 0 ? ready : waitForTurn))
    // Counted from the wait for the permit on: a statement that comes meanwhile waits for its turn too.
    const transactionAcquirer = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.scope, (scope) =>
        Effect.suspend(() => {
          inTransaction++
          return Effect.zipRight(
            Scope.addFinalizer(
              scope,
              Effect.sync(() => {
                inTransaction--
              })
            ),
            Effect.as(
              Effect.zipRight(restore(semaphore.take(1)), Scope.addFinalizer(scope, semaphore.release(1))),
              connection
            )
          )
        })
      )
    )
    const direct = DirectStatement.of({
      run: (sql, params) =>
        Effect.withFiberRuntime((fiber) =>
          inTransaction === 0 ||
          Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)._tag === "Some"
            ? run(sql, params, true, false)
            : Effect.zipRight(waitForTurn, run(sql, params, true, false))
        )
    })

    const client = yield* SqlClient.make({
      acquirer,
      compiler: Statement.makeCompilerSqlite(),
      transactionAcquirer,
      spanAttributes: [["db.system.name", "sqlite"]]
    })
    return { client, direct }
  })

/** `make` as the layer of the `SqlClient` and its `DirectStatement`. */
export const layer = (options: Options): Layer.Layer<SqlClient.SqlClient | DirectStatement> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ client, direct }) =>
      Context.make(SqlClient.SqlClient, client).pipe(Context.add(DirectStatement, direct))
    )
  ).pipe(Layer.provide(Reactivity.layer))
