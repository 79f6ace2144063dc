/**
 * The `delivery` section of a configuration file, decoded into what the outbox takes whole (its
 * `RetrySchedule`, for `Delivery.layer`) plus whether https reports may go to non-public addresses
 * (the transport's `httpsAllowPrivate`). A key left out keeps `defaultRetrySchedule`
 * (docs/design.md#delivery-attempts).
 */
import { DurationString } from "@tlsrpt/core"
import { Data, Duration, Either, Schema } from "effect"
import { defaultRetrySchedule, type RetrySchedule } from "./Delivery.js"

export const schema = Schema.Struct({
  attempts: Schema.optional(Schema.Int.pipe(Schema.between(1, 100))),
  backoff: Schema.optional(DurationString.schema),
  maxBackoff: Schema.optional(DurationString.schema),
  httpsAllowPrivate: Schema.optional(Schema.Boolean)
})
export type Section = typeof schema.Type

/** The retry schedule (durations decoded), and the transport's `httpsAllowPrivate`. */
export interface Delivery extends RetrySchedule {
  readonly backoff: Duration.Duration
  readonly maxBackoff: Duration.Duration
  readonly httpsAllowPrivate: boolean
}

/** A rule across keys of the section; `key` is the key within it (`maxBackoff`). */
export class DeliveryConfigError extends Data.TaggedError("DeliveryConfigError")<{
  readonly key: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.key}: ${this.reason}`
  }
}

const fail = (key: string, reason: string) => Either.left(new DeliveryConfigError({ key, reason }))

/**
 * The section over the defaults, key by key. A backoff under a second would retry a receiver's
 * outage in a busy loop; a cap below the first wait would make the doubling meaningless.
 */
export const resolve = (section: Section = {}): Either.Either<Delivery, DeliveryConfigError> => {
  const delivery: Delivery = {
    attempts: section.attempts ?? defaultRetrySchedule.attempts,
    backoff: section.backoff ?? Duration.decode(defaultRetrySchedule.backoff),
    maxBackoff: section.maxBackoff ?? Duration.decode(defaultRetrySchedule.maxBackoff),
    httpsAllowPrivate: section.httpsAllowPrivate ?? false
  }
  if (Duration.toMillis(delivery.backoff) < 1000) return fail("backoff", "must be at least 1s")
  if (Duration.lessThan(delivery.maxBackoff, delivery.backoff))
    return fail("maxBackoff", "must not be less than backoff")
  return Either.right(delivery)
}
