/**
 * The daily schedule (docs/design.md#schedule): a round at start for the day that just ended, then sleep until
 * the next 00:00 UTC plus a jitter drawn from the `Random` service, and repeat. Supervised: a defect
 * in the loop restarts it with backoff, never the process; interruption stops it between sends.
 */
import { Day } from "@tlsrpt/core"
import { Cause, Clock, Duration, Effect, Layer, Random, Schedule } from "effect"
import { Reporter, type ReporterConfig } from "./Reporter.js"

/** The instant of the next round after `nowMs`: next midnight UTC plus jitter. */
export const nextRunAt = (nowMs: number, jitterMs: number): number => Day.endMillis(Day.fromMillis(nowMs)) + jitterMs

export const jitterMillis = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) => {
  const min = Duration.toMillis(config.jitterMin)
  const max = Duration.toMillis(config.jitterMax)
  return max > min ? Random.nextIntBetween(min, max) : Effect.succeed(min)
}

/** One round for the day before the current UTC day. */
export const roundForYesterday = Effect.gen(function* () {
  const reporter = yield* Reporter
  const now = yield* Clock.currentTimeMillis
  return yield* reporter.runRound(Day.addDays(Day.fromMillis(now), -1))
})

export const loop = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    const round = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      yield* reporter
        .runRound(Day.addDays(Day.fromMillis(now), -1))
        .pipe(Effect.catchAll((e) => Effect.logError("report round failed; its keys stay for the next round", e)))
    })
    const sleepUntilNext = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const at = nextRunAt(now, yield* jitterMillis(config))
      yield* Effect.logDebug(`next report round at ${new Date(at).toISOString()}`)
      yield* Effect.sleep(Duration.millis(at - now))
    })
    // docs/design.md#schedule: the first round runs at start, for the day that just ended.
    yield* round
    return yield* Effect.forever(Effect.zipRight(sleepUntilNext, round))
  })

/** Restarts `self` after a defect or failure with capped exponential backoff; interruption stops it. */
export const supervise = <A, E, R>(name: string, self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.sandbox,
    Effect.tapError((cause) => Effect.logError(`${name} crashed, restarting`, cause)),
    Effect.retry({
      schedule: Schedule.exponential("1 second").pipe(Schedule.either(Schedule.spaced("5 minutes"))),
      while: (cause) => !Cause.isInterruptedOnly(cause)
    }),
    Effect.unsandbox,
    Effect.annotateLogs("fiber", name)
  )

/** The supervised daily loop as a background fiber of the layer's scope. */
export const layer = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) =>
  Layer.scopedDiscard(supervise("report-schedule", loop(config)).pipe(Effect.forkScoped))
