/**
 * The store of outgoing TLS results (mox's tlsrptdb, docs/design.md#result-rows): one row per (policy
 * domain, day, recipient domain), merged on add, read by the daily round, marked sent and cleaned up.
 * A port beside `SuppressionList` and `Outbox`; the layers that serve all three on one database are in
 * `Store` (SQLite `layer` / `layerMemory`, PostgreSQL `layerPg`), so callers stay independent of the
 * dialect.
 *
 * Domains are stored in A-label form (docs/design.md#domain-normal-form). Days are `YYYY-MM-DD`.
 */
import type { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Context, type Effect } from "effect"
import type { NewOutboxMessage } from "./Outbox.js"
import type { StoreError } from "./StoreError.js"

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

/** One report of a batch commit: which rows to mark sent, and the report's messages. */
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
    /**
     * The round's fetch: for each key, in input order, its rows (docs/design.md#ordering): phase 1 the rows
     * with this recipient domain and day in insertion order, phase 2 those with this policy domain and
     * day by recipient domain (byte order), then insertion; a few queries for many keys.
     */
    readonly rowsOfKeys: (
      phase: "recipient-domain" | "policy-domain",
      keys: ReadonlyArray<RowsKey>
    ) => Effect.Effect<ReadonlyArray<ReadonlyArray<ResultRow>>, StoreError>
    /** Listing for the CLI and admin page: by day, policy domain, recipient domain. */
    readonly listResults: (filter?: ResultFilter) => Effect.Effect<ReadonlyArray<ResultRow>, StoreError>
    /**
     * Marks each report's rows sent and enqueues its messages, all reports in ONE transaction (a round's
     * group commit, docs/design.md#mark-sent-and-enqueue): all of them are marked and queued, or none.
     * A message already queued for its (report id, destination) is not queued again.
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
  }
>() {}
