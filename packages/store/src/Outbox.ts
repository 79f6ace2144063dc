/**
 * The report outbox (docs/design.md#outbox): signed report mails and https bodies waiting for
 * delivery, with their attempts. A port: the SQL layers are `Store.layer` / `Store.layerPg` /
 * `Store.layerMemory`. A round writes its messages with `ResultStore.markSentAndEnqueueAll`, in the
 * transaction that marks its rows sent (docs/design.md#one-transaction-for-mark-and-outbox).
 */
import type { Day } from "@tlsrpt/core"
import { Context, type Effect } from "effect"
import type { StoreError } from "./StoreError.js"

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

export class Outbox extends Context.Tag("@tlsrpt/store/Outbox")<
  Outbox,
  {
    /**
     * Enqueues outside a round, due now; idempotent on (report-id, destination). Returns the ids (of the
     * rows already queued for a pair too). No production caller: a round queues with
     * `ResultStore.markSentAndEnqueueAll`, which reads no ids back; this is how the delivery, admin and
     * outbox tests queue messages whose ids they follow, on the same insert (`OutboxRecords.insert`).
     */
    readonly enqueue: (messages: ReadonlyArray<NewOutboxMessage>) => Effect.Effect<ReadonlyArray<number>, StoreError>
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
    /**
     * When the earliest queued message can next be claimed (its next attempt, or the end of a lease
     * that holds it, whichever is later); undefined when nothing is queued. The delivery loop sleeps
     * until then (docs/design.md#delivery-loop).
     */
    readonly nextDueAt: () => Effect.Effect<Date | undefined, StoreError>
    /** Records a successful attempt (it counts as an attempt) and ends the lease. */
    readonly markDelivered: (id: number, at: Date) => Effect.Effect<void, StoreError>
    /** Records a failed attempt and ends the lease: `nextAttemptAt` to retry, undefined for permanent failure. */
    readonly markAttemptFailed: (
      id: number,
      failure: { readonly error: string; readonly at: Date; readonly nextAttemptAt: Date | undefined }
    ) => Effect.Effect<void, StoreError>
    /** Messages in id order, optionally of one status. */
    readonly list: (filter?: {
      readonly status?: OutboxStatus | undefined
    }) => Effect.Effect<ReadonlyArray<OutboxMessage>, StoreError>
    /** How many messages have this status (all when omitted), without loading them. */
    readonly count: (status?: OutboxStatus) => Effect.Effect<number, StoreError>
  }
>() {}
