/**
 * What differs between the SQL databases the store runs on. The queries and migrations are written
 * once (`SqlResultStore.ts`, `Migrations.ts`) and take these few spellings and behaviours from the
 * dialect; a new database adds a folder beside `sqlite/` and `pg/` with its `Dialect` and its database
 * layer, and no branch anywhere else (docs/architecture.md).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Effect } from "effect"

export interface Dialect {
  readonly name: string
  /** Column types of the schema, by role. */
  readonly types: {
    /** A 64-bit integer row id assigned on insert in increasing order (results). */
    readonly rowId: string
    /** The same, never reusing an id of a deleted row (suppressions, outbox). */
    readonly serialId: string
    /** Raw bytes (outbox payloads). */
    readonly bytes: string
    /** An A-label domain, compared and ordered byte by byte (docs/design.md#ordering orders by domain). */
    readonly domain: string
  }
  /**
   * Appended to the SELECT by which `addResults` reads the rows it merges into, to hold them until
   * the commit where several processes write into one database; empty where one writer holds the
   * whole database for the transaction.
   */
  readonly lockRows: string
  /**
   * Appended to the sub-SELECT by which `claimDue` picks due outbox messages: skips the rows another
   * process is claiming right now instead of waiting for it; empty where one writer holds the database.
   */
  readonly skipLocked: string
  /**
   * Run first in an `addResults` transaction where several processes write: makes their merges take
   * turns. Row locks alone would deadlock: each writer meets the shared keys in its own order (new
   * keys get ids in first-seen order, docs/design.md#ordering), across several statements. Undefined where the
   * database has one writer anyway.
   */
  readonly lockWriters: string | undefined
  /**
   * Whether another writer can insert a key between `addResults`' SELECT of a step's keys and its
   * INSERT of the ones it did not find (PostgreSQL: row locks cannot cover absent rows). Then the INSERT
   * skips conflicting keys and returns the keys it inserted, and the others are merged into. False where
   * a write transaction holds the whole database (SQLite): a plain INSERT, which costs SQLite about
   * 40 % less than one with RETURNING, and a conflict (impossible there) fails instead of being skipped.
   */
  readonly insertRaces: boolean
  /** Runs `self` (the migrations) so that processes starting together take turns. */
  readonly exclusive: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient>
  /**
   * Adapts the client's `withTransaction` to the database (in place; the same client back). SQLite takes
   * the write lock at BEGIN so that writer processes wait for each other (`sqlite/WriteTransactions.ts`);
   * identity where the database locks rows.
   */
  readonly transactions: <C extends SqlClient.SqlClient>(client: C) => C
  /** A transaction that lost a race with another writer (deadlock, serialization failure): retry it whole. */
  readonly isTransientConflict: (error: SqlError) => boolean
}
