/**
 * The outbox delivery fiber: claims due messages from the store's outbox, hands each to the
 * `Transport`, and records the outcome. Retries follow a `RetrySchedule`: by default 11 attempts,
 * the first retry after 7.5 minutes, each wait twice the one before and at most 4 hours, so attempts
 * happen at about 0, 7.5, 22.5, 52.5, 112.5 minutes (mox's five, docs/design.md#delivery-attempts) and then every 4 hours
 * until about 24 hours have passed: long enough for greylisting and a receiver's outage. A temporary
 * failure on the last attempt, or a permanent one (SMTP 5xx) at once, leaves the message `failed` with
 * its last error (the dead letter, re-queued by `Outbox.requeue`).
 *
 * Each pass claims its messages in the database (a lease with owner and expiry), so any number of
 * processes on one database deliver each message once. Because the reporter commits "rows sent" and
 * "message queued" in one transaction (docs/design.md#one-transaction-for-mark-and-outbox), a crash before delivery leaves the message
 * queued and a later pass (after the lease expired) delivers it.
 *
 * The background loop does not poll (docs/design.md#delivery-loop): after a pass it sleeps until the
 * earliest queued message is due (`Outbox.nextDueAt`) or the store says it queued one (`OutboxSignal`),
 * and at most `maxSleep` (5 minutes), the safety net for writers the signal does not reach.
 */
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { Slots, Supervise } from "@tlsrpt/core"
import { Outbox, type OutboxMessage, OutboxSignal, type StoreError } from "@tlsrpt/store"
import { Clock, Context, Duration, Effect, Layer, LogLevel, Metric } from "effect"
import { Transport, type TransportError } from "./Transport.js"

/** How often and how long a message is tried. */
export interface RetrySchedule {
  /** Attempts in all, the first one included (at least 1). */
  readonly attempts: number
  /** Wait after the first failed attempt; each further wait is twice the one before … */
  readonly backoff: Duration.DurationInput
  /** … but never longer than this. */
  readonly maxBackoff: Duration.DurationInput
}

/** About 24 hours in all (see the module comment); the first five attempts are mox's (docs/design.md#delivery-attempts). */
export const defaultRetrySchedule: RetrySchedule = {
  attempts: 11,
  backoff: Duration.millis(450_000),
  maxBackoff: Duration.hours(4)
}

/**
 * When to try again after failed attempt number `attempt` (1-based) at `at`, or undefined when that
 * attempt was the last one.
 */
export const nextAttemptAfter = (
  attempt: number,
  at: Date,
  schedule: RetrySchedule = defaultRetrySchedule
): Date | undefined => {
  if (attempt >= schedule.attempts) return undefined
  const first = Duration.toMillis(schedule.backoff)
  const wait = Math.min(first * 2 ** Math.min(attempt - 1, 52), Duration.toMillis(schedule.maxBackoff))
  return new Date(at.getTime() + wait)
}

/** The time from the first attempt to the last one, if every attempt fails temporarily. */
export const retrySpan = (schedule: RetrySchedule = defaultRetrySchedule): Duration.Duration => {
  let at = new Date(0)
  for (let attempt = 1; ; attempt++) {
    const next = nextAttemptAfter(attempt, at, schedule)
    if (next === undefined) return Duration.millis(at.getTime())
    at = next
  }
}

export interface DeliveryPass {
  readonly delivered: number
  /** Temporary failures that will be tried again. */
  readonly retried: number
  /** Messages that failed for good in this pass (permanent error, or the last attempt). */
  readonly failed: number
}

export interface DeliveryOptions {
  /**
   * The longest the background loop sleeps between passes (default 5 minutes). It wakes earlier when
   * a message is due or this process queued one; the cap only bounds how late it sees messages that
   * another process (a fleet host, `tlsrpt outbox retry`) queued (docs/design.md#delivery-loop).
   */
  readonly maxSleep?: Duration.DurationInput | undefined
  /** Messages fetched per store query (default 50). */
  readonly batch?: number | undefined
  /**
   * Messages in flight at once (default: the transport's `concurrency`, else 4). Also the most messages
   * a crash can leave sent but unrecorded (docs/design.md#fleet-faults).
   */
  readonly concurrency?: number | undefined
  /** Attempts and backoff (default `defaultRetrySchedule`). */
  readonly schedule?: RetrySchedule | undefined
  /**
   * How long a claim keeps other processes off a message (default 10 minutes): longer than any one
   * attempt takes (SMTP timeouts of 60 s per step, https 30 s), so only a crashed process's claims expire.
   */
  readonly lease?: Duration.DurationInput | undefined
}

type ManualOptions = Omit<DeliveryOptions, "maxSleep">

/** The default `maxSleep`: a message another process queued waits at most this long (docs/design.md#delivery-loop). */
export const defaultMaxSleep = Duration.minutes(5)

/**
 * Milliseconds to sleep after a pass at `now`: until `due` (the earliest queued message's), at most
 * `max`, and at least 1 s when something is due already (a message the pass could not claim, e.g. one
 * whose outcome could not be recorded, must not make the loop spin).
 */
export const sleepAfterPass = (now: number, due: Date | undefined, max: number): number =>
  due === undefined ? max : Math.min(max, Math.max(1_000, due.getTime() - now))

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
// Tagged once per kind: `Metric.tagged` per message made a new metric key to hash and look up each time.
const byKind = (counter: typeof deliveredTotal) => ({
  mailto: Metric.tagged(counter, "kind", "mailto"),
  https: Metric.tagged(counter, "kind", "https")
})
const outcomeCounters = {
  delivered: byKind(deliveredTotal),
  failed: byKind(failedTotal),
  retried: byKind(retriedTotal)
}
const outboxDepth = Metric.gauge("tlsrpt_outbox_depth", { description: "Outbox messages still queued" })

type Outcome = "delivered" | "retried" | "failed" | "unrecorded"

export class Delivery extends Context.Tag("@tlsrpt/mail/Delivery")<
  Delivery,
  {
    /**
     * One pass: every message due now and not claimed by another process gets one attempt. Passes of
     * one instance are serialised; instances (and processes) exclude each other by their claims.
     */
    readonly runOnce: Effect.Effect<DeliveryPass, StoreError>
  }
>() {
  static readonly make = (options: ManualOptions = {}): Effect.Effect<Delivery["Type"], never, Outbox | Transport> =>
    Effect.gen(function* () {
      const store = yield* Outbox
      const transport = yield* Transport
      const batch = Math.max(1, options.batch ?? 50)
      // The transport's own figure when not told (`dir`: local writes, DIR_CONCURRENCY); 4 for a relay.
      const concurrency = Math.max(1, options.concurrency ?? transport.concurrency ?? 4)
      const schedule = options.schedule ?? defaultRetrySchedule
      const lease = Duration.toMillis(options.lease ?? Duration.minutes(10))
      // Unique per instance, and says where a claim came from when an operator looks at the table.
      const owner = `${hostname()}/${process.pid}/${randomUUID()}`
      const lock = yield* Effect.makeSemaphore(1)

      /**
       * A log line about `message`, annotated only when its level is logged: the annotations (a
       * HashMap in a FiberRef, set and restored) cost the main thread per message even when the line
       * is then dropped by the minimum log level.
       */
      const logAbout = (message: OutboxMessage, level: LogLevel.LogLevel, text: string) =>
        Effect.whenLogLevel(
          Effect.logWithLevel(level, text).pipe(
            Effect.annotateLogs({
              outboxId: message.id,
              destination: message.destination,
              reportId: message.reportId,
              attempt: message.attempts + 1
            })
          ),
          level
        )

      /**
       * Records an attempt's outcome before the slot takes the next message: never more than
       * `concurrency` messages sent but unrecorded, the duplicates a crash can cause
       * (docs/design.md#fleet-faults). One statement per message, no generator: the delivered case is
       * what every message takes.
       */
      const record = (
        message: OutboxMessage,
        result: TransportError | undefined
      ): Effect.Effect<Exclude<Outcome, "unrecorded">, StoreError> =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const at = new Date(now)
          if (result === undefined) {
            return store
              .markDelivered(message.id, at)
              .pipe(
                Effect.zipRight(logAbout(message, LogLevel.Info, "report delivered")),
                Effect.as("delivered" as const)
              )
          }
          const next = result.permanent ? undefined : nextAttemptAfter(message.attempts + 1, at, schedule)
          return store
            .markAttemptFailed(message.id, { error: result.message, at, nextAttemptAt: next })
            .pipe(
              Effect.zipRight(
                next === undefined
                  ? logAbout(message, LogLevel.Error, `report delivery failed for good: ${result.message}`).pipe(
                      Effect.as("failed" as const)
                    )
                  : logAbout(
                      message,
                      LogLevel.Warning,
                      `report delivery failed, retry at ${next.toISOString()}: ${result.message}`
                    ).pipe(Effect.as("retried" as const))
              )
            )
        })

      const deliver = (message: OutboxMessage): Effect.Effect<Outcome> =>
        transport.send(message).pipe(
          Effect.match({ onSuccess: () => undefined, onFailure: (e) => e }),
          // Stopped mid-attempt (SIGTERM): not recorded; give the claim back so that the next process
          // need not wait for the lease to expire. At most one duplicate, never a loss.
          Effect.onInterrupt(() => Effect.ignore(store.releaseClaim(message.id, owner))),
          Effect.flatMap((result) => record(message, result)),
          Effect.tap((outcome) => Metric.increment(outcomeCounters[outcome][message.kind])),
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
        const totals = { delivered: 0, retried: 0, failed: 0 }
        // One attempt per message per pass, even if its outcome could not be recorded.
        const seen = new Set<number>()
        while (true) {
          // Each batch's claim runs from the time it is taken: a pass may outlast the lease, and a claim
          // dated from the pass's start would already be expired for the other processes (docs/design.md#fleet-delivery).
          const claimedAt = new Date(yield* Clock.currentTimeMillis)
          const until = new Date(claimedAt.getTime() + lease)
          const due = (yield* store.claimDue(claimedAt, batch, { owner, until })).filter((m) => !seen.has(m.id))
          if (due.length === 0) break
          for (const m of due) seen.add(m.id)
          // One fiber per slot, not per message (Slots.ts); a message's outcome is recorded before its
          // slot takes the next.
          yield* Slots.forEach(due, concurrency, (m) =>
            Effect.map(deliver(m), (outcome) => {
              if (outcome !== "unrecorded") totals[outcome]++
            })
          )
        }
        yield* Metric.set(outboxDepth, yield* store.count("queued"))
        return totals satisfies DeliveryPass
      })

      return Delivery.of({ runOnce: lock.withPermits(1)(pass).pipe(Effect.withSpan("Delivery.runOnce")) })
    })

  /** `runOnce` only, no background loop: for the CLI's `send`. */
  static readonly layerManual = (options: ManualOptions = {}): Layer.Layer<Delivery, never, Outbox | Transport> =>
    Layer.effect(Delivery, Delivery.make(options))

  /**
   * `runOnce` plus a background loop that lives as long as the layer: a pass, then a sleep until the
   * next message is due or the store raises `OutboxSignal`, at most `maxSleep` (docs/design.md#delivery-loop).
   * A failure or defect in a pass is logged by `Supervise.supervise`, which restarts the loop after its
   * backoff (docs/architecture.md#background-loops).
   */
  static readonly layer = (
    options: DeliveryOptions = {}
  ): Layer.Layer<Delivery, never, Outbox | OutboxSignal | Transport> => {
    const maxSleep = Duration.toMillis(Duration.decode(options.maxSleep ?? defaultMaxSleep))
    const loop = Layer.scopedDiscard(
      Effect.gen(function* () {
        const delivery = yield* Delivery
        const store = yield* Outbox
        // Listening before the first pass: a message queued during a pass wakes the next sleep at once.
        const signal = yield* Effect.flatMap(OutboxSignal, (s) => s.listen)
        const passThenSleep = Effect.gen(function* () {
          yield* signal.clear
          yield* delivery.runOnce
          const due = yield* store.nextDueAt()
          const wait = sleepAfterPass(yield* Clock.currentTimeMillis, due, maxSleep)
          yield* Effect.raceFirst(signal.next, Effect.sleep(Duration.millis(wait)))
        })
        yield* passThenSleep.pipe(Effect.forever, Supervise.supervise("delivery"), Effect.forkScoped)
      })
    )
    return loop.pipe(Layer.provideMerge(Delivery.layerManual(options)))
  }
}
