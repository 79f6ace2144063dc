/**
 * PostgreSQL for the fleet tests: the server in TLSRPT_TEST_PG_URL and a fresh schema per test.
 * Without a server the tests are skipped with a message; in CI (`CI=true`) a missing server fails.
 */
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Redacted, type Scope } from "effect"

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

const PG_SH = fileURLToPath(new URL("../../../scripts/pg.sh", import.meta.url))

const pgSh = (...args: Array<string>) =>
  Effect.async<string>((resume) => {
    execFile("bash", [PG_SH, ...args], { timeout: 120_000 }, (error, stdout, stderr) =>
      resume(
        error === null
          ? Effect.succeed(stdout.trim())
          : Effect.dieMessage(`scripts/pg.sh ${args.join(" ")} failed: ${error.message}\n${stderr}`)
      )
    )
  })

/** A PostgreSQL server of the test's own (scripts/pg.sh), which the test may restart; stopped and removed at the end. */
export interface PrivateServer {
  readonly url: string
  /** Stops the server (fast: every connection is cut), waits `pause`, starts it again on the same port. */
  readonly restart: (pause: Duration.DurationInput) => Effect.Effect<void>
}

/**
 * A server only this test uses: restarting the shared one (TLSRPT_TEST_PG_URL) would cut the
 * connections of every other suite running at the same time.
 */
export const privateServer: Effect.Effect<PrivateServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.gen(function* () {
    // a new directory scripts/pg.sh creates (and gives to the postgres user when run as root)
    const dir = join(tmpdir(), `tlsrpt-fleet-pg-${randomBytes(6).toString("hex")}`)
    const url = yield* pgSh("start", dir)
    return { dir, url }
  }),
  ({ dir }) => pgSh("stop", dir).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
).pipe(
  Effect.map(({ dir, url }) => ({
    url,
    restart: (pause: Duration.DurationInput) =>
      pgSh("restart", dir, String(Math.ceil(Duration.toSeconds(pause)))).pipe(Effect.asVoid)
  }))
)
