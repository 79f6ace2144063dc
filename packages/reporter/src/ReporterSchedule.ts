/**
 * The daily schedule (docs/design.md#schedule): a round at start for the day that just ended, then sleep until
 * the next 00:00 UTC plus a jitter drawn from the `Random` service, and repeat. Every ended day that
 * was not reported gets its round, oldest first (docs/design.md#schedule-catch-up). Supervised by
 * `Supervise.supervise` (docs/architecture.md#background-loops): a defect in the loop restarts it with
 * backoff, never the process; interruption stops it between sends.
 */
import { Day, Supervise } from "@tlsrpt/core"
import { Clock, Duration, Effect, Layer, Random } from "effect"
import { ResultStore } from "@tlsrpt/store"
import { Reporter, type ReporterConfig } from "./Reporter.js"

/** The instant of the next round after `nowMs`: next midnight UTC plus jitter. */
export const nextRunAt = (nowMs: number, jitterMs: number): number => Day.endMillis(Day.fromMillis(nowMs)) + jitterMs

export const jitterMillis = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) => {
  const min = Duration.toMillis(config.jitterMin)
  const max = Duration.toMillis(config.jitterMax)
  return max > min ? Random.nextIntBetween(min, max) : Effect.succeed(min)
}

/**
 * How many ended days before yesterday a restarted schedule catches up on: older rows are stale (the
 * round for yesterday deletes rows before yesterday − 2, docs/design.md#stale-cleanup), so their rounds would send
 * nothing the stale cleanup keeps.
 */
export const CATCH_UP_DAYS = 2

/**
 * The next day to report: the day after the last reported one, from at most `CATCH_UP_DAYS` before
 * yesterday; yesterday when nothing was reported yet; `undefined` when yesterday is done. mox counts
 * days in its loop, so a round that ends after midnight never skips one; we keep the count in the
 * store, so a restart does not skip one either (docs/design.md#schedule-catch-up).
 */
export const nextDayToReport = (last: Day.Day | undefined, yesterday: Day.Day): Day.Day | undefined => {
  if (last === undefined) return yesterday
  const after = Day.addDays(last, 1)
  const earliest = Day.addDays(yesterday, -CATCH_UP_DAYS)
  // `YYYY-MM-DD` strings order as days.
  if (after > yesterday) return undefined
  return after < earliest ? earliest : (after as Day.Day)
}

export const loop = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    const store = yield* ResultStore
    /** Rounds for every ended day not yet reported, oldest first; time moves on while they run. */
    const catchUp = Effect.gen(function* () {
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        const yesterday = Day.addDays(Day.fromMillis(now), -1)
        const last = yield* store.lastReportedDay.pipe(
          Effect.tapError((e) => Effect.logError("cannot read the reported days; reporting yesterday only", e)),
          Effect.orElseSucceed(() => undefined)
        )
        const day = nextDayToReport(last, yesterday)
        if (day === undefined) return
        const done = yield* reporter.runRound(day).pipe(
          Effect.zipRight(store.markDayReported(day)),
          Effect.as(true),
          Effect.catchAll((e) =>
            Effect.logError("report round failed; its keys stay for the next round", e).pipe(Effect.as(false))
          )
        )
        // A failed round is tried again at the next wake-up, not in a tight loop.
        if (!done) return
      }
    })
    const sleepUntilNext = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const at = nextRunAt(now, yield* jitterMillis(config))
      yield* Effect.logDebug(`next report round at ${new Date(at).toISOString()}`)
      yield* Effect.sleep(Duration.millis(at - now))
    })
    // docs/design.md#schedule: the first round runs at start, for the day that just ended (and any day missed).
    yield* catchUp
    return yield* Effect.forever(Effect.zipRight(sleepUntilNext, catchUp))
  })

/** The supervised daily loop as a background fiber of the layer's scope. */
export const layer = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) =>
  Layer.scopedDiscard(loop(config).pipe(Supervise.supervise("report-schedule"), Effect.forkScoped))
