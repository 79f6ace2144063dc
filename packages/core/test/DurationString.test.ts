import { assert, describe, it } from "@effect/vitest"
import { Duration, Either, FastCheck as fc, ParseResult, Schema } from "effect"
import * as DurationString from "../src/DurationString.js"

const decode = Schema.decodeUnknownEither(DurationString.schema)
const reason = (e: Either.Either<unknown, ParseResult.ParseError>) =>
  Either.isLeft(e) ? ParseResult.TreeFormatter.formatErrorSync(e.left) : "decoded"

describe("DurationString", () => {
  it("4h, 5m, 240s, 1500ms, 1d and effect's long form; anything else names what to write", () => {
    const ms = (s: string) => Duration.toMillis(Either.getOrThrow(decode(s)))
    assert.deepStrictEqual(
      ["4h", "5m", "240s", "1500ms", "1d", "1.5s", "3 hours"].map(ms),
      [14_400_000, 300_000, 240_000, 1500, 86_400_000, 1500, 10_800_000]
    )
    assert.match(reason(decode("soon")), /expected a duration like "4h", "5m", "240s", got "soon"/)
    assert.isTrue(Either.isLeft(decode("-5m")))
    assert.isTrue(Either.isLeft(decode(5)))
  })

  it("bounded: outside [min, max] is refused with both bounds and the value", () => {
    const upToAnHour = Schema.decodeUnknownEither(DurationString.bounded(Duration.zero, Duration.hours(1)))
    assert.strictEqual(Duration.toMillis(Either.getOrThrow(upToAnHour("1h"))), 3_600_000)
    assert.match(reason(upToAnHour("25d")), /expected a duration between 0 and 1h, got 25d/)
  })

  it.prop("encode then decode gives the duration back", [fc.integer({ min: 0, max: 10 ** 12 })], ([n]) => {
    const d = Duration.millis(n)
    assert.deepStrictEqual(Schema.decodeSync(DurationString.schema)(Schema.encodeSync(DurationString.schema)(d)), d)
  })
})
