/**
 * PostgreSQL for tests: the server `scripts/pg.sh` starts (its URL in `TLSRPT_TEST_PG_URL`) and a fresh
 * empty schema per test on it, so tests of one server never see each other's rows.
 *
 * Without a server the PostgreSQL tests are skipped with a message; in CI (`CI=true`) a missing
 * server fails the test file instead, so CI never passes without having run them.
 */
import { randomBytes } from "node:crypto"
import { Effect, type Scope } from "effect"
import * as Pg from "pg"

export const ENV = "TLSRPT_TEST_PG_URL"

/** The test server's URL, or undefined when none is configured. */
export const serverUrl = (): string | undefined => {
  const url = process.env[ENV]
  return url === undefined || url === "" ? undefined : url
}

let warned = false

/**
 * Whether PostgreSQL tests can run here. Throws in CI without a server (a test file that fails to load
 * counts as failed); locally prints once why they are skipped.
 */
export const available = (): boolean => {
  if (serverUrl() !== undefined) return true
  if (process.env.CI === "true") {
    throw new Error(`${ENV} is not set: CI must run the PostgreSQL tests (.ci/run starts one with scripts/pg.sh)`)
  }
  if (!warned) {
    warned = true
    console.warn(`PostgreSQL tests skipped: ${ENV} is not set (run them with: scripts/pg.sh run pnpm vitest run …)`)
  }
  return false
}

const admin = <A>(f: (client: Pg.Client) => Promise<A>): Promise<A> => {
  const client = new Pg.Client({ connectionString: serverUrl() })
  return client.connect().then(() => f(client).finally(() => client.end()))
}

/** `url` with every connection's search_path set to `schema`. */
export const withSchema = (url: string, schema: string): string => {
  const u = new URL(url)
  u.searchParams.set("options", `-c search_path=${schema}`)
  return u.toString()
}

/**
 * A new empty schema on the test server, dropped (with everything in it) when the scope closes; the
 * URL's connections work in it.
 */
export const fresh: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(async () => {
    const url = serverUrl()
    if (url === undefined) throw new Error(`${ENV} is not set`)
    const schema = `t_${randomBytes(8).toString("hex")}`
    await admin((c) => c.query(`CREATE SCHEMA ${schema}`))
    return { schema, url: withSchema(url, schema) }
  }),
  ({ schema }) => Effect.promise(() => admin((c) => c.query(`DROP SCHEMA ${schema} CASCADE`)))
).pipe(Effect.map(({ url }) => url))
