/**
 * The PostgreSQL database behind `Store.layerPg`: a pool of `@effect/sql-pg` connections,
 * migrated on open (behind an advisory lock, so workers starting together take turns).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { type Duration, Effect, Layer, Redacted } from "effect"
import * as Pg from "pg"
import * as Migrations from "../Migrations.js"
import { StoreError } from "../StoreError.js"
import { dialect } from "./PgDialect.js"
import * as PgSession from "./PgSession.js"

export interface Options {
  /** `postgres://user:password@host:port/database` (query parameters as libpq's, e.g. `?sslmode=…`). */
  readonly url: string | Redacted.Redacted
  /** Pool size (default 10). */
  readonly maxConnections?: number | undefined
  /**
   * How long a session may sit idle inside a transaction before the server ends it, releasing its
   * locks (`PgSession`; default `PgSession.DEFAULT_IDLE_IN_TRANSACTION`). A fleet runner uses a third of
   * its shard lease (docs/design.md#fleet-faults).
   */
  readonly idleInTransaction?: Duration.DurationInput | undefined
}

/** INT8 (BIGINT) comes back from node-postgres as a string; the store's BIGINTs are ids and epoch ms, exact as numbers. */
const INT8_OID = 20

const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== "binary"
      ? (value: string) => Number(value)
      : Pg.types.getTypeParser(oid, format as "text")) as typeof Pg.types.getTypeParser
}

/** Connects and migrates; the layer fails with a `StoreError` when the server cannot be reached. */
export const layer = (options: Options): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, StoreError> =>
  Layer.effectDiscard(Effect.flatMap(SqlClient.SqlClient, () => Migrations.run(dialect))).pipe(
    Layer.provideMerge(
      PgClient.layer({
        url: Redacted.make(
          PgSession.url(Redacted.isRedacted(options.url) ? String(Redacted.value(options.url)) : options.url, {
            idleInTransaction: options.idleInTransaction ?? PgSession.DEFAULT_IDLE_IN_TRANSACTION
          })
        ),
        maxConnections: options.maxConnections ?? 10,
        applicationName: "tlsrpt",
        types
      })
    ),
    Layer.mapError((cause) => (cause instanceof StoreError ? cause : new StoreError({ operation: "open", cause })))
  )
