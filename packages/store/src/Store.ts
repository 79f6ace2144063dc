/**
 * The store's ports (`ResultStore`, `SuppressionList`, `Outbox`) served together on ONE database: a
 * SQLite file (`layer`, the embedded default), a private in-memory SQLite (`layerMemory`, for tests),
 * PostgreSQL (`layerPg`, many processes on one database), or a `SqlClient` the caller provides
 * (`layerSql`). A new dialect adds its folder (its `Dialect` and database Layer) and one layer here
 * (docs/architecture.md#adding-a-store-dialect); the ports and their SQL stay as they are.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, type Redacted, Schema } from "effect"
import type { Dialect } from "./Dialect.js"
import * as Migrations from "./Migrations.js"
import type { Outbox } from "./Outbox.js"
import { OutboxSignal } from "./OutboxSignal.js"
import type * as PgDatabase from "./pg/PgDatabase.js"
import { dialect as pgDialect } from "./pg/PgDialect.js"
import type { ResultStore } from "./ResultStore.js"
import * as SqlOutbox from "./SqlOutbox.js"
import * as SqlResultStore from "./SqlResultStore.js"
import * as SqlSuppressionList from "./SqlSuppressionList.js"
import { fromSqlError, StoreError } from "./StoreError.js"
import type { SuppressionList } from "./SuppressionList.js"
import * as SqliteDatabase from "./sqlite/SqliteDatabase.js"
import { dialect as sqliteDialect } from "./sqlite/SqliteDialect.js"

/** Every port of the store, and the signal its writes to the outbox raise (OutboxSignal.ts). */
export type Store = ResultStore | SuppressionList | Outbox | OutboxSignal

/** The three ports on the ambient `SqlClient` of `dialect` (migrated already), sharing one `OutboxSignal`. */
export const ports = (dialect: Dialect): Layer.Layer<Store, never, SqlClient.SqlClient> =>
  Layer.mergeAll(SqlResultStore.layer(dialect), SqlSuppressionList.layer(dialect), SqlOutbox.layer(dialect)).pipe(
    Layer.provideMerge(OutboxSignal.layer)
  )

/**
 * `self` in ONE transaction of the ambient store's database: the `addResults` calls inside it commit
 * or roll back together (each call's own transaction becomes a savepoint). The collector's writer
 * thread writes a big batch in pieces this way, so it never decodes the whole batch at once and a
 * batch is still all or nothing (a retried batch is not counted twice).
 */
export const transaction = <A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, E | StoreError, R | SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(self)).pipe(fromSqlError("transaction"))

/**
 * The store in a SQLite file (parent directory created, WAL, migrated on open). Also provides the
 * `SqlClient`, for tests and admin tools.
 */
export const layer = (options: SqliteDatabase.Options): Layer.Layer<Store | SqlClient.SqlClient, StoreError> =>
  ports(sqliteDialect).pipe(Layer.provideMerge(SqliteDatabase.layer(options)))

/** A private in-memory SQLite database: each build of the layer starts empty. */
export const layerMemory: Layer.Layer<Store | SqlClient.SqlClient, StoreError> = Layer.suspend(() =>
  layer({ filename: ":memory:" })
)

/**
 * The store in a PostgreSQL database shared by many processes (one collector per MTA host; counts of
 * one key add up), migrated on open behind an advisory lock. Also provides the `SqlClient`.
 */
export const layerPg = (options: PgDatabase.Options): Layer.Layer<Store | SqlClient.SqlClient, StoreError> =>
  // The PostgreSQL driver (pg, @effect/sql-pg) is loaded only when this layer is built: a worker on
  // SQLite would carry it in memory for nothing.
  Layer.unwrapEffect(
    Effect.map(
      Effect.promise(() => import("./pg/PgDatabase.js")),
      (PgDatabase) => ports(pgDialect).pipe(Layer.provideMerge(PgDatabase.layer(options)))
    )
  )

/**
 * The store on a `SqlClient` provided by the caller, in that client's dialect (`sqlite/`, `pg/`): adapts
 * its transactions to the dialect (`Dialect.transactions`), runs the migrations, then serves the same queries.
 */
export const layerSql = (dialect: Dialect): Layer.Layer<Store, StoreError, SqlClient.SqlClient> =>
  ports(dialect).pipe(
    Layer.provide(
      Layer.effectDiscard(
        Effect.mapError(
          Effect.zipRight(Effect.map(SqlClient.SqlClient, dialect.transactions), Migrations.run(dialect)),
          (cause) => new StoreError({ operation: "migrate", cause })
        )
      )
    )
  )

const NonEmpty = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))
const PostgresUrl = Schema.String.pipe(
  Schema.filter((s) => /^postgres(ql)?:\/\/./i.test(s) || "expected a postgres:// URL")
)

/**
 * The `database` section of a configuration file: a SQLite file path (the plain string form, or
 * `{ "type": "sqlite", "file" }`), or a PostgreSQL database shared by many workers.
 */
export const DatabaseConfig = Schema.Union(
  NonEmpty,
  Schema.Struct({ type: Schema.Literal("sqlite"), file: NonEmpty }),
  Schema.Struct({ type: Schema.Literal("postgres"), url: PostgresUrl })
)
export type DatabaseConfig = typeof DatabaseConfig.Type

/** The database a `DatabaseConfig` names, ready to open: the file's path resolved, the URL redacted. */
export type Database =
  | { readonly type: "sqlite"; readonly file: string }
  | { readonly type: "postgres"; readonly url: Redacted.Redacted<string> }

/**
 * The store on the database given: `layer` for a SQLite file, `layerPg` for PostgreSQL (with
 * `idleInTransaction`, see `PgDatabase.Options`; a fleet runner passes a third of its lease).
 */
export const layerConfig = (
  database: Database,
  options: Pick<PgDatabase.Options, "idleInTransaction"> = {}
): Layer.Layer<Store | SqlClient.SqlClient, StoreError> =>
  database.type === "postgres"
    ? layerPg({ url: database.url, idleInTransaction: options.idleInTransaction })
    : layer({ filename: database.file })
