/**
 * PostgreSQL for the fleet tests: the server in TLSRPT_TEST_PG_URL and a fresh schema per test.
 * Without a server the tests are skipped with a message; in CI (`CI=true`) a missing server fails.
 */
import { randomBytes } from "node:crypto"
import { createServer } from "node:net"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted, type Scope } from "effect"

const ENV = "TLSRPT_TEST_PG_URL"

export const available = (): boolean => {
  if ((process.env[ENV] ?? "") !== "") return true
  if (process.env.CI === "true") throw new Error(`${ENV} is not set: CI must run the fleet's PostgreSQL tests`)
  console.warn(`fleet PostgreSQL tests skipped: ${ENV} is not set`)
  return false
}

const admin = <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(process.env[ENV] ?? "") })),
    Effect.scoped,
    Effect.orDie
  )

/** A new schema, dropped at the end of the scope; the URL's connections work in it. */
export const fresh: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.gen(function* () {
    const schema = `fleet_${randomBytes(6).toString("hex")}`
    yield* admin((sql) => sql.unsafe(`CREATE SCHEMA ${schema}`))
    const url = new URL(process.env[ENV] ?? "")
    url.searchParams.set("options", `-c search_path=${schema}`)
    return { schema, url: url.toString() }
  }),
  ({ schema }) => admin((sql) => sql.unsafe(`DROP SCHEMA ${schema} CASCADE`)).pipe(Effect.ignore)
).pipe(Effect.map(({ url }) => url))

/** `count` ports free on 127.0.0.1 right now. */
export const freePorts = (count: number) =>
  Effect.promise(() =>
    Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<number>((resolve) => {
            const s = createServer().listen(0, "127.0.0.1", () => {
              const address = s.address()
              s.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
            })
          })
      )
    )
  )
