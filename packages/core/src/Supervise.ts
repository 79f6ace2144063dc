/**
 * The one supervision policy of every background loop (the report schedule, outbox delivery, the
 * collector's flush, the datagram source): a failure or defect is logged with its cause and the loop
 * restarts after a capped exponential backoff; interruption ends it. See docs/architecture.md.
 */
import { Cause, Duration, Effect, Schedule } from "effect"

export interface SuperviseOptions {
  /** First restart delay (default 1 s); each further one doubles. */
  readonly initialDelay?: Duration.DurationInput | undefined
  /** Upper bound of the restart delay (default 5 minutes). */
  readonly maxDelay?: Duration.DurationInput | undefined
}

/** The restart schedule: exponential from `initialDelay`, capped at `maxDelay`. */
export const restartSchedule = (options: SuperviseOptions = {}): Schedule.Schedule<unknown> =>
  Schedule.exponential(options.initialDelay ?? Duration.seconds(1)).pipe(
    Schedule.either(Schedule.spaced(options.maxDelay ?? Duration.minutes(5)))
  )

/**
 * Runs `self`, restarting it after a failure or a defect (logged at ERROR with the cause) on
 * `restartSchedule`; interruption is never retried. Logs carry `fiber=<name>`.
 */
export const supervise =
  (name: string, options: SuperviseOptions = {}) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    self.pipe(
      Effect.sandbox,
      Effect.tapError((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError(`${name} crashed, restarting`, cause)
      ),
      Effect.retry({ schedule: restartSchedule(options), while: (cause) => !Cause.isInterruptedOnly(cause) }),
      Effect.unsandbox,
      Effect.annotateLogs("fiber", name)
    )
