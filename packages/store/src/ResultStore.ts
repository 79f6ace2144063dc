/**
 * The store of outgoing TLS results, the suppression list and the report outbox (mox's tlsrptdb,
 * docs/design.md#result-rows, plus the outbox, docs/design.md#outbox). A port: `layer` / `layerMemory` are
 * SQLite (`@effect/sql-sqlite-node`), `layerPg` is PostgreSQL (`@effect/sql-pg`, for many writers);
 * callers stay independent of the dialect.
 *
 * Domains are stored in A-label form (docs/design.md#domain-normal-form: one normal form). Days are `YYYY-MM-DD`.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Context, Effect, Layer } from "effect"
import type { Dialect } from "./Dialect.js"
import * as Migrations from "./Migrations.js"
import * as PgDatabase from "./pg/PgDatabase.js"
import { dialect as pgDialect } from "./pg/PgDialect.js"
import * as SqlResultStore from "./SqlResultStore.js"
import { type InvalidAddress, type StoreError, StoreError as StoreErrorClass } from "./StoreError.js"
import * as SqliteDatabase from "./sqlite/SqliteDatabase.js"
import { dialect as sqliteDialect } from "./sqlite/SqliteDialect.js"

export { InvalidAddress, StoreError } from "./StoreError.js"

/** One aggregate to add (docs/design.md#row-merge); merged into the row with the same key. */
export interface NewResultRow {
  readonly policyDomain: Domain.Domain
  readonly day: Day.Day
  readonly recipientDomain: Domain.Domain
  readonly isHost: boolean
  readonly sendReport: boolean
  readonly results: ReadonlyArray<PolicyResult.PolicyResult>
}

/** A stored row, keyed (policy domain, day, recipient domain). Domains in A-label form. */
export interface ResultRow {
  readonly id: number
  readonly policyDomain: string
  readonly day: Day.Day
  readonly recipientDomain: string
  readonly isHost: boolean
  /** Sticky true (docs/design.md#row-merge). */
  readonly sendReport: boolean
  readonly sentToRecipientDomain: boolean
  readonly sentToPolicyDomain: boolean
  /** The recipient domain's mailto rua strings as in DNS, stored when its report was made (docs/design.md#result-rows). */
  readonly recipientDomainReportingAddresses: ReadonlyArray<string>
  readonly results: ReadonlyArray<PolicyResult.PolicyResult>
  readonly created: Date
  readonly updated: Date
}

/** A (policy domain, day) key to clean up, optionally only the rows of one phase. */
export interface DeleteKey {
  readonly policyDomain: string
  readonly day: Day.Day
  readonly phase?: "recipient-domain" | "policy-domain" | undefined
}

/** What the reporter needs to gather keys (docs/design.md#key-gathering). */
export interface ResultKey {
  readonly policyDomain: string
  readonly day: Day.Day
  readonly recipientDomain: string
  readonly sendReport: boolean
}

export interface ResultFilter {
  readonly day?: Day.Day | undefined
  /** Matches the policy domain or the recipient domain (A-label). */
  readonly domain?: string | undefined
}

export interface Suppression {
  readonly id: number
  /** A mail address (lower case, A-label domain) or an https URL (WHATWG form). */
  readonly address: string
  readonly until: Date
  readonly comment: string
  readonly inserted: Date
}

export type OutboxStatus = "queued" | "delivered" | "failed"

/** A message to deliver: a signed report mail to one address, or a gzip body to one https URL. */
export interface NewOutboxMessage {
  readonly kind: "mailto" | "https"
  /** The mail address as published (local part case kept, A-label domain), or the https URL. */
  readonly destination: string
  /** SMTP MAIL FROM for mail; empty for https. */
  readonly envelopeFrom: string
  /** The raw message (mail) or the gzip JSON body (https). */
  readonly payload: Uint8Array
  readonly reportId: string
  readonly policyDomain: string
  readonly day: Day.Day
}

export interface OutboxMessage extends NewOutboxMessage {
  readonly id: number
  readonly status: OutboxStatus
  readonly attempts: number
  readonly nextAttemptAt: Date
  readonly lastError: string | undefined
  readonly created: Date
  readonly updated: Date
}

/** What a report round commits in ONE transaction (docs/design.md#one-transaction-for-mark-and-outbox: no loss, no duplicate). */
export type MarkSent =
  | {
      /** Phase 1: rows with this recipient domain and day (docs/design.md#mark-sent-and-enqueue). */
      readonly phase: "recipient-domain"
      readonly recipientDomain: string
      readonly day: Day.Day
      readonly reportingAddresses: ReadonlyArray<string>
    }
  | {
      /** Phase 2: rows with this policy domain and day. */
      readonly phase: "policy-domain"
      readonly policyDomain: string
      readonly day: Day.Day
    }

/** One (domain, day) key of a round's batched read: the recipient domain in phase 1, the policy domain in phase 2. */
export interface RowsKey {
  readonly domain: string
  readonly day: Day.Day
}

/** One report of a batch commit: what `markSentAndEnqueue` takes for one report. */
export interface MarkSentReport {
  readonly mark: MarkSent
  readonly messages: ReadonlyArray<NewOutboxMessage>
}

export class ResultStore extends Context.Tag("@tlsrpt/store/ResultStore")<
  ResultStore,
  {
    /** docs/design.md#row-merge: merge each row into its key's row in one transaction (IsHost last writer, SendReport sticky). */
    readonly addResults: (rows: ReadonlyArray<NewResultRow>) => Effect.Effect<void, StoreError>
    /** Every row key with day ≤ `day`, for the reporter's key gathering (docs/design.md#key-gathering). */
    readonly keysUpTo: (day: Day.Day) => Effect.Effect<ReadonlyArray<ResultKey>, StoreError>
    /** Phase 1 fetch: rows with this recipient domain and day, in insertion order (docs/design.md#ordering). */
    readonly rowsByRecipientDomain: (
      recipientDomain: string,
      day: Day.Day
    ) => Effect.Effect<ReadonlyArray<ResultRow>, StoreError>
    /** Phase 2 fetch: rows with this policy domain and day, by recipient domain then insertion (docs/design.md#ordering). */
    readonly rowsByPolicyDomain: (
      policyDomain: string,
      day: Day.Day
    ) => Effect.Effect<ReadonlyArray<ResultRow>, StoreError>
    /**
     * The round's batched fetch: for each key, in input order, the rows `rowsByRecipientDomain` (phase 1)
     * or `rowsByPolicyDomain` (phase 2) return for it, in the same order; a few queries for many keys.
     */
    readonly rowsOfKeys: (
      phase: "recipient-domain" | "policy-domain",
      keys: ReadonlyArray<RowsKey>
    ) => Effect.Effect<ReadonlyArray<ReadonlyArray<ResultRow>>, StoreError>
    /** Listing for the CLI and admin page: by day, policy domain, recipient domain. */
    readonly listResults: (filter?: ResultFilter) => Effect.Effect<ReadonlyArray<ResultRow>, StoreError>
    /** Marks rows sent and enqueues the report's messages in one transaction; returns the outbox ids. */
    readonly markSentAndEnqueue: (
      mark: MarkSent,
      messages: ReadonlyArray<NewOutboxMessage>
    ) => Effect.Effect<ReadonlyArray<number>, StoreError>
    /**
     * `markSentAndEnqueue` for several reports in ONE transaction (a round's group commit,
     * docs/design.md#mark-sent-and-enqueue): all of them are marked and queued, or none.
     */
    readonly markSentAndEnqueueAll: (reports: ReadonlyArray<MarkSentReport>) => Effect.Effect<void, StoreError>
    /**
     * Deletes the rows of each (policy domain, day) key, in one transaction (docs/design.md#cleanup-matrix cleanup): all of
     * them, or with `phase` only those the phase owns (recipient domain = policy domain for phase 1,
     * the others for phase 2; docs/design.md#cleanup-per-phase).
     */
    readonly deleteKeys: (keys: ReadonlyArray<DeleteKey>) => Effect.Effect<number, StoreError>
    /** Stale cleanup: deletes rows with day < `day` (docs/design.md#stale-cleanup). Returns the number deleted. */
    readonly deleteBefore: (day: Day.Day) => Effect.Effect<number, StoreError>
    /** Records that the scheduled round for `day` completed (docs/design.md#schedule-catch-up). */
    readonly markDayReported: (day: Day.Day) => Effect.Effect<void, StoreError>
    /** The latest day recorded by `markDayReported`, if any. */
    readonly lastReportedDay: Effect.Effect<Day.Day | undefined, StoreError>

    readonly suppressAdd: (entry: {
      readonly address: string
      readonly until: Date
      readonly comment?: string | undefined
    }) => Effect.Effect<Suppression, StoreError | InvalidAddress>
    readonly suppressList: Effect.Effect<ReadonlyArray<Suppression>, StoreError>
    readonly suppressRemove: (address: string) => Effect.Effect<boolean, StoreError | InvalidAddress>
    readonly suppressExtend: (address: string, until: Date) => Effect.Effect<boolean, StoreError | InvalidAddress>
    /** Active when `until > at`; the address is normalised before matching. */
    readonly isSuppressed: (address: string, at: Date) => Effect.Effect<boolean, StoreError>

    /** Enqueue outside a round (idempotent on (report-id, destination)). */
    readonly enqueue: (messages: ReadonlyArray<NewOutboxMessage>) => Effect.Effect<ReadonlyArray<number>, StoreError>
    /** Queued messages with nextAttemptAt ≤ now, oldest first (whether claimed or not). */
    readonly dueMessages: (now: Date, limit: number) => Effect.Effect<ReadonlyArray<OutboxMessage>, StoreError>
    /**
     * Claims up to `limit` due messages (queued, nextAttemptAt ≤ now, no lease or an expired one) for
     * `owner` until `until`, in the statement that selects them, so two processes never claim one
     * message at once. Oldest first. Recording the attempt's outcome ends the lease.
     */
    readonly claimDue: (
      now: Date,
      limit: number,
      lease: { readonly owner: string; readonly until: Date }
    ) => Effect.Effect<ReadonlyArray<OutboxMessage>, StoreError>
    /** Gives a claimed message back unattempted (an interrupted attempt): it is due again at once. */
    readonly releaseClaim: (id: number, owner: string) => Effect.Effect<void, StoreError>
    /**
     * Queues failed messages again (one by id, or every failed one) with a fresh attempt count, due at
     * `at`; a queued message given by id becomes due at `at`. Returns the ids re-queued.
     */
    readonly requeue: (
      which: { readonly id: number } | "failed",
      at: Date
    ) => Effect.Effect<ReadonlyArray<number>, StoreError>
    readonly markDelivered: (id: number, at: Date) => Effect.Effect<void, StoreError>
    /** Records a failed attempt: `nextAttemptAt` to retry, or undefined for permanent failure. */
    readonly markAttemptFailed: (
      id: number,
      failure: { readonly error: string; readonly at: Date; readonly nextAttemptAt: Date | undefined }
    ) => Effect.Effect<void, StoreError>
    /** How many outbox messages have this status (all when omitted), without loading them. */
    readonly countOutbox: (status?: OutboxStatus) => Effect.Effect<number, StoreError>
    readonly listOutbox: (filter?: {
      readonly status?: OutboxStatus | undefined
    }) => Effect.Effect<ReadonlyArray<OutboxMessage>, StoreError>
  }
>() {
  /**
   * The store in a SQLite file (parent directory created, WAL, migrated on open). Also provides the
   * `SqlClient`, for tests and admin tools.
   */
  static readonly layer = (
    options: SqliteDatabase.Options
  ): Layer.Layer<ResultStore | SqlClient.SqlClient, StoreError> =>
    Layer.effect(ResultStore, SqlResultStore.make(sqliteDialect)).pipe(
      Layer.provideMerge(SqliteDatabase.layer(options))
    )

  /**
   * The store in a PostgreSQL database shared by many processes (one collector per MTA host; counts
   * of one key add up), migrated on open behind an advisory lock. Also provides the `SqlClient`.
   */
  static readonly layerPg = (options: PgDatabase.Options): Layer.Layer<ResultStore | SqlClient.SqlClient, StoreError> =>
    Layer.effect(ResultStore, SqlResultStore.make(pgDialect)).pipe(Layer.provideMerge(PgDatabase.layer(options)))

  /**
   * The store on a `SqlClient` provided by the caller, in that client's dialect (`sqlite/`, `pg/`):
   * runs the migrations, then serves the same queries.
   */
  static readonly layerSql = (dialect: Dialect): Layer.Layer<ResultStore, StoreError, SqlClient.SqlClient> =>
    Layer.effect(
      ResultStore,
      Effect.zipRight(
        Effect.mapError(Migrations.run(dialect), (cause) => new StoreErrorClass({ operation: "migrate", cause })),
        SqlResultStore.make(dialect)
      )
    )

  /** A private in-memory SQLite database: each build of the layer starts empty. */
  static readonly layerMemory: Layer.Layer<ResultStore | SqlClient.SqlClient, StoreError> = Layer.suspend(() =>
    ResultStore.layer({ filename: ":memory:" })
  )
}
