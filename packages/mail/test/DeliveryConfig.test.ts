import { assert, describe, it } from "@effect/vitest"
import { Duration, Either, ParseResult, Schema } from "effect"
import { defaultRetrySchedule } from "../src/Delivery.js"
import * as DeliveryConfig from "../src/DeliveryConfig.js"

const decode = Schema.decodeUnknownEither(DeliveryConfig.schema, { onExcessProperty: "error" })
const resolved = (json: unknown) => DeliveryConfig.resolve(Either.getOrThrow(decode(json)))
const firstPath = (json: unknown) => {
  const decoded = decode(json)
  assert.isTrue(Either.isLeft(decoded), "expected a decoding error")
  return ParseResult.ArrayFormatter.formatErrorSync((decoded as Either.Left<ParseResult.ParseError, unknown>).left)[0]!
    .path
}

describe("DeliveryConfig", () => {
  it("an empty section is defaultRetrySchedule, https only to public addresses", () => {
    const d = Either.getOrThrow(resolved({}))
    assert.deepStrictEqual(
      [d.attempts, Duration.toMillis(d.backoff), Duration.toMillis(d.maxBackoff), d.httpsAllowPrivate],
      [
        defaultRetrySchedule.attempts,
        Duration.toMillis(defaultRetrySchedule.backoff),
        Duration.toMillis(defaultRetrySchedule.maxBackoff),
        false
      ]
    )
    assert.deepStrictEqual(Either.getOrThrow(DeliveryConfig.resolve()), d)
  })

  it("given keys override the defaults one by one", () => {
    const d = Either.getOrThrow(resolved({ attempts: 3, backoff: "1m", httpsAllowPrivate: true }))
    assert.deepStrictEqual(
      [d.attempts, Duration.toMillis(d.backoff), Duration.toMillis(d.maxBackoff), d.httpsAllowPrivate],
      [3, 60_000, Duration.toMillis(defaultRetrySchedule.maxBackoff), true]
    )
  })

  it("attempts 1 to 100, durations as strings; unknown keys are refused", () => {
    assert.deepStrictEqual(firstPath({ attempts: 0 }), ["attempts"])
    assert.deepStrictEqual(firstPath({ attempts: 101 }), ["attempts"])
    assert.deepStrictEqual(firstPath({ backoff: "soon" }), ["backoff"])
    assert.deepStrictEqual(firstPath({ retries: 3 }), ["retries"])
  })

  it("a backoff under 1s, or a maxBackoff under the backoff, is an error naming the key", () => {
    const error = (json: unknown) => Either.getOrThrow(Either.flip(resolved(json)))
    assert.strictEqual(error({ backoff: "10ms" }).message, "backoff: must be at least 1s")
    assert.strictEqual(error({ backoff: "10m", maxBackoff: "5m" }).message, "maxBackoff: must not be less than backoff")
    // the default maxBackoff is 4h
    assert.strictEqual(error({ backoff: "5h" }).key, "maxBackoff")
    assert.isTrue(Either.isRight(resolved({ backoff: "1s", maxBackoff: "1s" })))
  })
})
