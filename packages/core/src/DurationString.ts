/**
 * A duration as configuration writes it (`"4h"`, `"5m"`, `"240s"`, `"1500ms"`, `"1d"`, or effect's
 * `"4 hours"`), decoded by a Schema: the round's window and jitter, the delivery backoff are all
 * spelled this way, each in the package that takes it.
 */
import { Duration, Option, ParseResult, Schema } from "effect"

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** The string form decoded to a `Duration`; the message names what to write instead. */
export const schema = Schema.transformOrFail(Schema.String, Schema.DurationFromSelf, {
  strict: true,
  decode: (s, _, ast) => {
    const m = DURATION.exec(s.trim())
    if (m !== null) return ParseResult.succeed(Duration.millis(Number(m[1]) * UNIT_MS[m[2]!]!))
    const d = Duration.decodeUnknown(s)
    return Option.isSome(d) && Duration.toMillis(d.value) >= 0
      ? ParseResult.succeed(d.value)
      : ParseResult.fail(
          new ParseResult.Type(ast, s, `expected a duration like "4h", "5m", "240s", got ${JSON.stringify(s)}`)
        )
  },
  encode: (d) => ParseResult.succeed(`${Duration.toMillis(d)}ms`)
})

/**
 * A duration within `[min, max]`. A timer beyond 2^31 ms fires at once or never (Node's setTimeout),
 * so a setting that becomes a timer is bounded by what its schedule can use.
 */
export const bounded = (min: Duration.Duration, max: Duration.Duration) =>
  schema.pipe(
    Schema.filter(
      (d) =>
        (Duration.greaterThanOrEqualTo(d, min) && Duration.lessThanOrEqualTo(d, max)) ||
        `expected a duration between ${Duration.format(min)} and ${Duration.format(max)}, got ${Duration.format(d)}`
    )
  )
