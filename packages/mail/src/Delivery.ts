/**
 * The outbox delivery fiber: takes due messages from the store's outbox, hands each to the
 * `Transport`, and records the outcome. At most 5 attempts, backoff from 7.5 minutes doubling, so
 * attempts happen at about 0, 7.5, 22.5, 52.5 and 112.5 minutes; a temporary failure on the 5th
 * attempt is final (docs/design.md#delivery-attempts). A permanent failure (SMTP 5xx) is final at once.
 *
 * Because the reporter commits "rows sent" and "message queued" in one transaction (docs/design.md#one-transaction-for-mark-and-outbox),
 * a crash before delivery leaves the message queued and the next pass delivers it.
 */
import { type OutboxMessage, ResultStore, type StoreError } from "@tlsrpt/store"
import { Clock, Context, Duration, Effect, Layer, Metric } from "effect"
import { Transport, type TransportError } from "./Transport.js"

/** docs/design.md#delivery-attempts: queue MaxAttempts for reports. */
export const MAX_ATTEMPTS = 5
/** docs/design.md#delivery-attempts: the first retry waits 7.5 minutes; each further one twice as long. */
export const FIRST_BACKOFF = Duration.millis(450_000)

/**
 * When to try again after failed attempt number `attempt` (1-based) at `at`, or undefined when that
 * attempt was the last one.
 */
export const nextAttemptAfter = (attempt: number, at: Date): Date | undefined =>
  attempt >= MAX_ATTEMPTS ? undefined : new Date(at.getTime() + Duration.toMillis(FIRST_BACKOFF) * 2 ** (attempt - 1))

export interface DeliveryPass {
  readonly delivered: number
  /** Temporary failures that will be tried again. */
  readonly retried: number
  /** Messages that failed for good in this pass (permanent error, or the last attempt). */
  readonly failed: number
}

export interface DeliveryOptions {
  /** How often the background loop looks for due messages (default 30 s). */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Messages fetched per store query (default 50). */
  readonly batch?: number | undefined
  /** Messages in flight at once (default 4). */
  readonly concurrency?: number | undefined
}

const deliveredTotal = Metric.counter("tlsrpt_reports_delivered_total", {
  description: "Outbox messages delivered, by kind",
  incremental: true
})
const failedTotal = Metric.counter("tlsrpt_reports_failed_total", {
  description: "Outbox messages that failed for good, by kind",
  incremental: true
})
const retriedTotal = Metric.counter("tlsrpt_delivery_retries_total", {
  description: "Temporary delivery failures scheduled for another attempt, by kind",
  incremental: true
})
const outboxDepth = Metric.gauge("tlsrpt_outbox_depth", { description: "Outbox messages still queued" })

type Outcome = "delivered" | "retried" | "failed" | "unrecorded"

export class Delivery extends Context.Tag("@tlsrpt/mail/Delivery")<
  Delivery,
  {
    /**
     * One pass: every message due now gets one attempt. Passes are serialised, so the background
     * loop and a CLI `send` never attempt the same message at once.
     */
    readonly runOnce: Effect.Effect<DeliveryPass, StoreError>
  }
>() {
  static readonly make = (
    options: Pick<DeliveryOptions, "batch" | "concurrency"> = {}
  ): Effect.Effect<Delivery["Type"], never, ResultStore | Transport> =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      const transport = yield* Transport
      const batch = Math.max(1, options.batch ?? 50)
      const concurrency = Math.max(1, options.concurrency ?? 4)
      const lock = yield* Effect.makeSemaphore(1)

      const record = (message: OutboxMessage, result: TransportError | undefined) =>
        Effect.gen(function* () {
          const attempt = message.attempts + 1
          const at = new Date(yield* Clock.currentTimeMillis)
          const log = Effect.annotateLogs({
            outboxId: message.id,
            destination: message.destination,
            reportId: message.reportId,
            attempt
          })
          if (result === undefined) {
            yield* store.markDelivered(message.id, at)
            yield* Effect.logInfo("report delivered").pipe(log)
            return "delivered" as const
          }
          const next = result.permanent ? undefined : nextAttemptAfter(attempt, at)
          yield* store.markAttemptFailed(message.id, { error: result.message, at, nextAttemptAt: next })
          if (next === undefined) {
            yield* Effect.logError(`report delivery failed for good: ${result.message}`).pipe(log)
            return "failed" as const
          }
          yield* Effect.logWarning(`report delivery failed, retry at ${next.toISOString()}: ${result.message}`).pipe(
            log
          )
          return "retried" as const
        })

      const deliver = (message: OutboxMessage): Effect.Effect<Outcome> =>
        transport.send(message).pipe(
          Effect.match({ onSuccess: () => undefined, onFailure: (e) => e }),
          Effect.flatMap((result) => record(message, result)),
          Effect.tap((outcome) => {
            const counter =
              outcome === "delivered"
                ? deliveredTotal
                : outcome === "failed"
                  ? failedTotal
                  : outcome === "retried"
                    ? retriedTotal
                    : undefined
            return counter === undefined ? Effect.void : Metric.increment(Metric.tagged(counter, "kind", message.kind))
          }),
          // The attempt happened but its outcome could not be stored: the message stays due and is
          // tried again next pass (at-least-once), which is the best the store allows.
          Effect.catchTag("StoreError", (error) =>
            Effect.logError(`recording the delivery outcome failed: ${error.message}`).pipe(
              Effect.annotateLogs({ outboxId: message.id, destination: message.destination }),
              Effect.as("unrecorded" as const)
            )
          )
        )

      const pass = Effect.gen(function* () {
        const now = new Date(yield* Clock.currentTimeMillis)
        const totals = { delivered: 0, retried: 0, failed: 0 }
        // One attempt per message per pass, even if its outcome could not be recorded.
        const seen = new Set<number>()
        while (true) {
          const due = (yield* store.dueMessages(now, batch)).filter((m) => !seen.has(m.id))
          if (due.length === 0) break
          for (const m of due) seen.add(m.id)
          const outcomes = yield* Effect.forEach(due, deliver, { concurrency })
          for (const outcome of outcomes) if (outcome !== "unrecorded") totals[outcome]++
        }
        yield* Metric.set(outboxDepth, yield* store.countOutbox("queued"))
        return totals satisfies DeliveryPass
      })

      return Delivery.of({ runOnce: lock.withPermits(1)(pass).pipe(Effect.withSpan("Delivery.runOnce")) })
    })

  /** `runOnce` only, no background loop: for the CLI's `send`. */
  static readonly layerManual = (
    options: Pick<DeliveryOptions, "batch" | "concurrency"> = {}
  ): Layer.Layer<Delivery, never, ResultStore | Transport> => Layer.effect(Delivery, Delivery.make(options))

  /**
   * `runOnce` plus a supervised background loop (a pass, then `pollInterval` of sleep, forever) that
   * lives as long as the layer. A failure or defect in one pass is logged and the loop goes on.
   */
  static readonly layer = (options: DeliveryOptions = {}): Layer.Layer<Delivery, never, ResultStore | Transport> => {
    const pollInterval = Duration.decode(options.pollInterval ?? Duration.seconds(30))
    const loop = Layer.scopedDiscard(
      Effect.gen(function* () {
        const delivery = yield* Delivery
        yield* delivery.runOnce.pipe(
          Effect.catchAllCause((cause) => Effect.logError("delivery pass failed", cause)),
          Effect.zipRight(Effect.sleep(pollInterval)),
          Effect.forever,
          Effect.annotateLogs({ service: "Delivery" }),
          Effect.forkScoped
        )
      })
    )
    return loop.pipe(Layer.provideMerge(Delivery.layerManual(options)))
  }
}
