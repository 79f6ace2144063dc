import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as Day from "../src/Day.js"

const day = (s: string): Day.Day => Either.getOrElse(Day.parse(s), (e) => assert.fail(e))

// 0003-01-01 .. 9996-12-31 as day numbers since the epoch: ±800 days stays inside YYYY-MM-DD
const MIN_DAY = Math.ceil(Date.parse("0003-01-01T00:00:00Z") / Day.DAY_MILLIS)
const MAX_DAY = Math.floor(Date.parse("9996-12-31T00:00:00Z") / Day.DAY_MILLIS)
const anyDay = fc.integer({ min: MIN_DAY, max: MAX_DAY }).map((n) => Day.fromMillis(n * Day.DAY_MILLIS))

describe("Day", () => {
  it("parses valid days, including leap days and years below 100", () => {
    for (const s of [
      "2024-01-09",
      "2024-02-29",
      "2000-02-29",
      "1970-01-01",
      "9999-12-31",
      "0000-01-01",
      "0050-06-15"
    ]) {
      assert.strictEqual(day(s), s)
    }
  })

  it("rejects invalid dates and other shapes", () => {
    for (const s of [
      "2024-02-30",
      "2023-02-29",
      "1900-02-29",
      "2024-04-31",
      "2024-13-01",
      "2024-00-10",
      "2024-01-00",
      "2024-01-32",
      "2024-1-09",
      "20240109",
      "2024-01-09T00:00:00Z",
      " 2024-01-09",
      "2024-01-09\n",
      "+02024-01-09",
      ""
    ]) {
      assert.isTrue(Either.isLeft(Day.parse(s)), s)
      assert.isTrue(Either.isLeft(Schema.decodeUnknownEither(Day.Day)(s)), s)
    }
    assert.isTrue(Either.isLeft(Schema.decodeUnknownEither(Day.Day)(20240109)))
  })

  it("start and end of the day, from any instant inside it", () => {
    const d = day("2024-01-09")
    assert.strictEqual(Day.startMillis(d), Date.UTC(2024, 0, 9))
    assert.strictEqual(Day.endMillis(d), Date.UTC(2024, 0, 10))
    assert.strictEqual(Day.startMillis(d) / 1000, 1704758400)
    assert.strictEqual(Day.fromMillis(Date.UTC(2024, 0, 9)), d)
    assert.strictEqual(Day.fromMillis(Date.UTC(2024, 0, 9, 23, 59, 59, 999)), d)
    assert.strictEqual(Day.fromMillis(Date.UTC(2024, 0, 10)), "2024-01-10")
    assert.strictEqual(Day.fromMillis(0), "1970-01-01")
    assert.strictEqual(Day.fromMillis(-1), "1969-12-31")
    assert.strictEqual(Day.compact(d), "20240109")
  })

  it("addDays across month, leap-day and year ends", () => {
    assert.strictEqual(Day.addDays(day("2024-01-31"), 1), "2024-02-01")
    assert.strictEqual(Day.addDays(day("2024-02-28"), 1), "2024-02-29")
    assert.strictEqual(Day.addDays(day("2024-02-29"), 1), "2024-03-01")
    assert.strictEqual(Day.addDays(day("2023-02-28"), 1), "2023-03-01")
    assert.strictEqual(Day.addDays(day("2023-12-31"), 1), "2024-01-01")
    assert.strictEqual(Day.addDays(day("2024-01-01"), -1), "2023-12-31")
    assert.strictEqual(Day.addDays(day("2024-03-01"), -1), "2024-02-29")
    assert.strictEqual(Day.addDays(day("2024-01-09"), 0), "2024-01-09")
    assert.strictEqual(Day.addDays(day("2024-01-09"), 366), "2025-01-09")
    assert.strictEqual(Day.addDays(day("2024-01-09"), -2), "2024-01-07")
  })

  it.prop(
    "round trips: parse(d), fromMillis(start/end-1), addDays(±n), schema",
    [anyDay, fc.integer({ min: -800, max: 800 })],
    ([d, n]) => {
      assert.deepStrictEqual(Day.parse(d), Either.right(d))
      assert.strictEqual(Day.fromMillis(Day.startMillis(d)), d)
      assert.strictEqual(Day.fromMillis(Day.endMillis(d) - 1), d)
      assert.strictEqual(Day.endMillis(d) - Day.startMillis(d), Day.DAY_MILLIS)
      assert.strictEqual(Schema.encodeSync(Day.Day)(Schema.decodeUnknownSync(Day.Day)(d)), d)
      const e = Day.addDays(d, n)
      assert.strictEqual(Day.startMillis(e) - Day.startMillis(d), n * Day.DAY_MILLIS)
      assert.deepStrictEqual(Day.parse(e), Either.right(e))
      assert.strictEqual(Day.addDays(e, -n), d)
      assert.strictEqual(Day.compact(d), d.replaceAll("-", ""))
    }
  )
})

describe("Day.makeFromMillisCached", () => {
  it.prop(
    "agrees with fromMillis for any sequence of instants (in order or not)",
    { ms: fc.array(fc.integer({ min: -8_640_000_000_000, max: 253_402_300_799_999 }), { maxLength: 50 }) },
    ({ ms }) => {
      const cached = Day.makeFromMillisCached()
      for (const t of [...ms, ...ms.map((t) => t + 1), ...ms.map((t) => t - 1)])
        assert.strictEqual(cached(t), Day.fromMillis(t))
    }
  )
})
