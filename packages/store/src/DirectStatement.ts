/**
 * A database's cheaper way to run one precompiled statement (`[text, params]`, compiled once by the
 * client's own compiler) than `@effect/sql`'s Statement, whose compile, span, scope and connection
 * steps cost the round's main thread ~35 µs per statement against ~13 µs for better-sqlite3 itself
 * (README "The round's main thread"). The SQLite database provides it (`sqlite/SqliteConnection.ts`);
 * where it is absent (PostgreSQL, a client the caller provides) the ports run the same SQL through
 * the client. The ports use it for the statements a round runs per message, not per batch.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Context, type Effect } from "effect"

export class DirectStatement extends Context.Tag("@tlsrpt/store/DirectStatement")<
  DirectStatement,
  {
    /**
     * Runs `text` with `params` on the client's connection, in the caller's transaction if it has one,
     * else after any other fiber's open transaction: the rows of a reader, [] for a write.
     */
    readonly run: (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<unknown>, SqlError>
  }
>() {}
