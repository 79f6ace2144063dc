/**
 * The SQLite file behind the default `ResultStore` layer: `SqliteConnection` (better-sqlite3, one
 * connection, so one writer), migrated on open.
 */
import { mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Effect, Layer, Option } from "effect"
import type { DirectStatement } from "../DirectStatement.js"
import * as Migrations from "../Migrations.js"
import { StoreError } from "../StoreError.js"
import * as SqliteConnection from "./SqliteConnection.js"
import { dialect } from "./SqliteDialect.js"

export interface Options {
  /** Path of the database file; `:memory:` for a private in-memory database. */
  readonly filename: string
  /** How long a statement waits for another process's lock before failing (default 5 s). */
  readonly busyTimeoutMillis?: number | undefined
}

const isMemory = (filename: string) => filename === ":memory:" || filename === ""

/**
 * Opens (creating the parent directory) and migrates the database. The client turns on WAL; with
 * `synchronous = NORMAL` a commit survives a crash of the process (a power loss may lose the last
 * commits, never corrupt the file), at a fraction of the fsyncs of FULL.
 */
export const layer = (options: Options): Layer.Layer<SqlClient.SqlClient | DirectStatement, StoreError> => {
  const open = Effect.gen(function* () {
    if (!isMemory(options.filename)) {
      yield* Effect.tryPromise({
        try: () => mkdir(dirname(options.filename), { recursive: true }),
        catch: (cause) => new StoreError({ operation: "open", cause })
      })
    }
    return SqliteConnection.layer({ filename: options.filename })
  })
  const setup = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMillis ?? 5000))}`)
    yield* sql`PRAGMA synchronous = NORMAL`
    yield* Migrations.run(dialect)
  })
  // The driver throws on open (a corrupt file, a read-only one): that is the operator's to fix, so it
  // becomes a StoreError naming the file and the driver's reason rather than a defect.
  const operation = `open ${options.filename}`
  // Transactions begin IMMEDIATE before the first one (the migrations') runs (WriteTransactions.ts).
  const opened = Layer.effectDiscard(Effect.map(SqlClient.SqlClient, dialect.transactions)).pipe(
    Layer.provideMerge(Layer.unwrapEffect(open))
  )
  return Layer.effectDiscard(setup).pipe(
    Layer.provideMerge(opened),
    Layer.catchAllCause((cause) => {
      const e = Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))
      return Layer.fail(new StoreError({ operation, cause: e instanceof StoreError ? e.cause : e }))
    })
  )
}
