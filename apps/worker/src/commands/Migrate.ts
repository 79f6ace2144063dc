/**
 * `tlsrpt migrate`: create or upgrade the store's schema and exit. The worker and every command
 * migrate the store on open (on PostgreSQL behind an advisory lock); this one does only that, e.g.
 * before starting a fleet of workers on a new database.
 */
import * as Command from "@effect/cli/Command"
import * as SqlClient from "@effect/sql/SqlClient"
import { Console, Effect } from "effect"
import { configOption, loadConfig, withStore } from "./Root.js"

export const command = Command.make("migrate", { config: configOption }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    const applied = yield* withStore(
      config,
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) =>
          sql<{ readonly migration_id: number; readonly name: string }>`SELECT migration_id, name
            FROM effect_sql_migrations ORDER BY migration_id`
      )
    )
    const last = applied[applied.length - 1]
    yield* Console.log(
      `${config.database}: schema at migration ${last === undefined ? "none" : `${last.migration_id}_${last.name}`}`
    )
  })
).pipe(Command.withDescription("Create or upgrade the store's schema and exit"))
