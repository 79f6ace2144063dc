import { assert, describe, it } from "@effect/vitest"
import { Duration, Either, ParseResult, Schema } from "effect"
import { defaultConfig } from "../src/Reporter.js"
import * as ReportsConfig from "../src/ReportsConfig.js"

const decode = Schema.decodeUnknownEither(ReportsConfig.schema, { onExcessProperty: "error" })
const firstPath = (json: unknown) => {
  const decoded = decode(json)
  assert.isTrue(Either.isLeft(decoded), "expected a decoding error")
  return ParseResult.ArrayFormatter.formatErrorSync((decoded as Either.Left<ParseResult.ParseError, unknown>).left)[0]!
    .path
}

describe("ReportsConfig", () => {
  it("an empty section is the reporter's defaultConfig, sending and collecting", () => {
    const r = Either.getOrThrow(ReportsConfig.resolve(Either.getOrThrow(decode({}))))
    assert.deepStrictEqual(r, { ...defaultConfig, enabled: true, collect: true })
    assert.deepStrictEqual(Either.getOrThrow(ReportsConfig.resolve()), r)
  })

  it("given keys override the defaults one by one", () => {
    const r = Either.getOrThrow(
      ReportsConfig.resolve(
        Either.getOrThrow(decode({ enabled: false, forAllSuccess: true, window: "2h", jitterMax: "10m" }))
      )
    )
    assert.isFalse(r.enabled)
    assert.isTrue(r.collect)
    assert.isTrue(r.forAllSuccess)
    assert.strictEqual(Duration.toMillis(r.window), 7_200_000)
    assert.strictEqual(Duration.toMillis(r.jitterMax), 600_000)
    assert.deepStrictEqual(r.jitterMin, defaultConfig.jitterMin)
    assert.deepStrictEqual(r.temporaryRetries, defaultConfig.temporaryRetries)
  })

  it("bounds: the window up to 23h, gap and jitter up to 1h; unknown keys are refused", () => {
    assert.deepStrictEqual(firstPath({ window: "1d" }), ["window"])
    assert.deepStrictEqual(firstPath({ maxGap: "2h" }), ["maxGap"])
    assert.deepStrictEqual(firstPath({ jitterMin: "2h" }), ["jitterMin"])
    assert.deepStrictEqual(firstPath({ https: "yes" }), ["https"])
    assert.deepStrictEqual(firstPath({ windw: "1h" }), ["windw"])
  })

  it("jitterMin above jitterMax (given or default) is an error naming jitterMin", () => {
    const error = (json: unknown) => Either.flip(ReportsConfig.resolve(Either.getOrThrow(decode(json))))
    const e = Either.getOrThrow(error({ jitterMin: "10m", jitterMax: "5m" }))
    assert.strictEqual(e.key, "jitterMin")
    assert.strictEqual(e.message, "jitterMin: must not be greater than jitterMax")
    // the default jitterMax is 360s
    assert.strictEqual(Either.getOrThrow(error({ jitterMin: "7m" })).key, "jitterMin")
    assert.isTrue(
      Either.isRight(ReportsConfig.resolve(Either.getOrThrow(decode({ jitterMin: "5m", jitterMax: "5m" }))))
    )
  })
})
