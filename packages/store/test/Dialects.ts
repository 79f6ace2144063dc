/**
 * The dialect matrix: every store test runs once per database (as Effect's own sql packages test).
 * Each build of `layer` is a fresh empty store: SQLite in memory, PostgreSQL in a new schema on the
 * test server (`scripts/pg.sh`; skipped with a message without one, a failure in CI).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { PgTestDatabase } from "@tlsrpt/testkit"
import { Effect, Layer } from "effect"
import { ResultStore, type StoreError } from "../src/ResultStore.js"

export interface StoreUnderTest {
  readonly label: string
  /** True where the database is not available here (the tests show as skipped). */
  readonly skip: boolean
  readonly layer: Layer.Layer<ResultStore | SqlClient.SqlClient, StoreError>
  /** fast-check runs of a property that builds two stores per run. */
  readonly propertyRuns: number
  /** Makes inserting an outbox message to `destination` fail with `reason`; returns the undo. */
  readonly refuseOutbox: (
    destination: string,
    reason: string
  ) => Effect.Effect<Effect.Effect<void, SqlError, SqlClient.SqlClient>, SqlError, SqlClient.SqlClient>
}

const sqlite: StoreUnderTest = {
  label: "sqlite",
  skip: false,
  layer: ResultStore.layerMemory,
  propertyRuns: 100,
  refuseOutbox: (destination, reason) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.as(
        sql.unsafe(`CREATE TRIGGER outbox_refuse BEFORE INSERT ON outbox WHEN NEW.destination = '${destination}'
          BEGIN SELECT RAISE(ABORT, '${reason}'); END`),
        Effect.asVoid(sql`DROP TRIGGER outbox_refuse`)
      )
    )
}

const pg: StoreUnderTest = {
  label: "pg",
  skip: !PgTestDatabase.available(),
  layer: Layer.unwrapScoped(Effect.map(PgTestDatabase.fresh, (url) => ResultStore.layerPg({ url, maxConnections: 4 }))),
  propertyRuns: 15,
  refuseOutbox: (destination, reason) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.as(
        Effect.zipRight(
          sql.unsafe(`CREATE FUNCTION outbox_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.destination = '${destination}' THEN RAISE EXCEPTION '${reason}'; END IF; RETURN NEW; END $$`),
          sql`CREATE TRIGGER outbox_refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_refuse()`
        ),
        Effect.asVoid(sql`DROP FUNCTION outbox_refuse() CASCADE`)
      )
    )
}

export const dialects: ReadonlyArray<StoreUnderTest> = [sqlite, pg]
