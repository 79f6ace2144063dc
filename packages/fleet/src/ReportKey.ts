/**
 * The report key as a sharded, persisted entity (docs/design.md#fleet-entities): one entity per
 * (day, phase, policy domain) runs the reporter's per-key step (lookup, compose, mark sent + outbox in
 * one transaction). Its `Send` messages are stored in the cluster tables, so when the runner that owns
 * the key's shard dies, the next owner gets the message again; the step is idempotent through the
 * already-sent guard (docs/design.md#already-sent-guard) and the outbox's unique (report-id, destination).
 */
import { createHash } from "node:crypto"
import { ClusterSchema, Entity } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import { Day } from "@tlsrpt/core"
import { type KeyReport, type ReporterConfig, ReporterLive } from "@tlsrpt/reporter"
import { Duration, Effect, PrimaryKey, Schedule, Schema } from "effect"

export const Phase = Schema.Literal("recipient-domain", "policy-domain")

/** A key's outcome as it crosses the wire and sits in the cluster's reply table. */
export const KeyReportSchema = Schema.Struct({
  phase: Phase,
  policyDomain: Schema.String,
  day: Day.Day,
  outcome: Schema.Literal(
    "sent",
    "not-requested",
    "no-record",
    "no-destinations",
    "no-failure",
    "already-sent",
    "nothing-left",
    "all-suppressed",
    "discarded-syntax",
    "discarded-multiple",
    "kept-temporary",
    "kept-error"
  ),
  queued: Schema.Number,
  detail: Schema.optional(Schema.String)
})

/**
 * One key of one round. The primary key is the round's id: a round that runs again after a crash
 * sends the same message, and the cluster answers it from the stored reply instead of running it twice.
 */
export class SendKey extends Schema.Class<SendKey>("@tlsrpt/fleet/SendKey")({
  round: Schema.String,
  phase: Phase,
  policyDomain: Schema.String,
  day: Day.Day,
  inBoth: Schema.Boolean,
  /** Delays of the temporary-DNS-error retries still inside the round's window, in ms. */
  retriesMs: Schema.Array(Schema.Number)
}) {
  [PrimaryKey.symbol]() {
    return this.round
  }
}

export const ReportKey = Entity.make("ReportKey", [Rpc.make("Send", { payload: SendKey, success: KeyReportSchema })])
  .annotateRpcs(ClusterSchema.Persisted, true)
  // An interrupted step (its shard was taken away while the runner lives on) is run again, never
  // answered with the interruption (docs/design.md#fleet-faults).
  .annotateRpcs(ClusterSchema.Uninterruptible, "server")

/**
 * A step kept because the database failed (connection lost, PostgreSQL restarting): not a verdict on
 * the key, so the step runs again once the database is back. Other kept errors stay kept.
 */
export const storeFailed = (report: KeyReport): boolean =>
  report.outcome === "kept-error" && /^(StoreError|SqlError)\b/.test(report.detail ?? "")

/** About two minutes of retries: longer than a database restart, short against the round's window. */
const storeRetries = Schedule.exponential("250 millis").pipe(
  Schedule.union(Schedule.spaced("10 seconds")),
  Schedule.intersect(Schedule.recurs(20))
)

/** Entity ids stay short: the cluster stores them (and message ids built from them) in 255-character columns. */
export const entityId = (day: Day.Day, phase: KeyReport["phase"], policyDomain: string): string => {
  const p = phase === "recipient-domain" ? "rcpt" : "mx"
  const plain = `${day}/${p}/${policyDomain}`
  return plain.length <= 150
    ? plain
    : `${day}/${p}/#${createHash("sha256").update(policyDomain).digest("hex").slice(0, 40)}`
}

/**
 * The entity's behaviour: the reporter's per-key step. Messages to one key are handled one at a time
 * (concurrency 1), and a key lives on one runner at a time, so one key is never worked on twice at once.
 */
export const layer = (config: ReporterConfig) =>
  ReportKey.toLayer(
    Effect.gen(function* () {
      const sendKey = yield* ReporterLive.makeKeySender(config)
      return ReportKey.of({
        Send: ({ payload }) =>
          sendKey(
            payload.phase,
            payload.policyDomain,
            payload.day,
            payload.retriesMs.map((ms) => Duration.millis(ms)),
            payload.inBoth
          ).pipe(
            // idempotent: the already-sent guard and the outbox's unique (report-id, destination)
            Effect.filterOrFail(
              (r) => !storeFailed(r),
              (r) => r
            ),
            Effect.retry(storeRetries),
            Effect.catchAll((r) =>
              Effect.as(Effect.logError(`the database stayed unreachable; the key is kept: ${r.detail}`), r)
            )
          )
      })
    }),
    { concurrency: 1, maxIdleTime: "1 minute" }
  )
