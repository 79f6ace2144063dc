/**
 * The daily report round (docs/design.md#the-daily-round): gather the keys of a day, phase 1
 * (recipient domains) then phase 2 (MX hosts), the failure rule, one transaction per report for
 * mark-sent + outbox, and the cleanup matrix.
 */
import type { Day } from "@tlsrpt/core"
import { Context, Data, Duration, type Effect } from "effect"

export interface ReporterConfig {
  /** mox's OutgoingTLSReportsForAllSuccess: send reports without failures too (docs/design.md#failure-rule). */
  readonly forAllSuccess: boolean
  /** Deliver to `https:` reporting URIs (RFC 8460 §3; docs/design.md#https-reporting). */
  readonly https: boolean
  /** Sends of a round are spread over this window: gap = min(window / n, maxGap) (docs/design.md#pacing). */
  readonly window: Duration.Duration
  readonly maxGap: Duration.Duration
  /** Wake-up jitter after 00:00 UTC, drawn from the Random service (docs/design.md#schedule: 240–360 s). */
  readonly jitterMin: Duration.Duration
  readonly jitterMax: Duration.Duration
  /** A key whose lookup failed temporarily is retried within the round after these delays. */
  readonly temporaryRetries: ReadonlyArray<Duration.Duration>
}

export const defaultConfig: ReporterConfig = {
  forAllSuccess: false,
  https: true,
  window: Duration.hours(4),
  maxGap: Duration.minutes(5),
  jitterMin: Duration.seconds(240),
  jitterMax: Duration.seconds(360),
  temporaryRetries: [Duration.minutes(5), Duration.minutes(30), Duration.hours(2)]
}

export type KeyOutcome =
  | "sent"
  | "not-requested"
  | "no-record"
  | "no-destinations"
  | "no-failure"
  | "already-sent"
  | "nothing-left"
  | "all-suppressed"
  | "discarded-syntax"
  | "discarded-multiple"
  | "kept-temporary"
  | "kept-error"

export interface KeyReport {
  readonly phase: "recipient-domain" | "policy-domain"
  readonly policyDomain: string
  readonly day: Day.Day
  readonly outcome: KeyOutcome
  /** Outbox messages written for this key. */
  readonly queued: number
  readonly detail?: string | undefined
}

export interface RoundSummary {
  readonly day: Day.Day
  readonly keys: ReadonlyArray<KeyReport>
  /** Reports composed and committed to the outbox. */
  readonly reports: number
  /** Outbox messages written (one per destination). */
  readonly queued: number
  /** Keys kept for the next round because of a temporary error. */
  readonly kept: ReadonlyArray<KeyReport>
  readonly deletedRows: number
}

export class ReporterError extends Data.TaggedError("ReporterError")<{
  readonly day: string
  readonly reason: string
  readonly cause?: unknown
}> {}

export class Reporter extends Context.Tag("@tlsrpt/reporter/Reporter")<
  Reporter,
  {
    /**
     * One round for `day`: rows with day ≤ `day` (older leftovers included, docs/design.md#key-gathering), stale rows older
     * than two full days before `day` removed first. `pace: false` sends without spreading (CLI `send`).
     */
    readonly runRound: (
      day: Day.Day,
      options?: { readonly pace?: boolean }
    ) => Effect.Effect<RoundSummary, ReporterError>
  }
>() {}
