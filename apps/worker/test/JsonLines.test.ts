import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as JsonLines from "../src/JsonLines.js"

const row = {
  "policy-domain": "Example.COM",
  day: "2024-01-09",
  "recipient-domain": "example.com",
  "is-host": false,
  "send-report": true,
  results: [
    {
      policy: {
        "policy-type": "sts",
        "policy-string": ["version: STSv1"],
        "policy-domain": "example.com",
        "mx-host": "mx.example.com"
      },
      summary: { "total-successful-session-count": 3, "total-failure-session-count": 1 },
      "failure-details": [{ "result-type": "certificate-expired", "failed-session-count": 1 }]
    }
  ]
}

/** 2024-01-10T12:00:00Z: the rows' day 2024-01-09 is yesterday. */
const NOW = Date.parse("2024-01-10T12:00:00Z")

const error = (text: string) => Either.flip(JsonLines.decodeImport(text, NOW)).pipe(Either.getOrThrow)

describe("JsonLines", () => {
  it("decodes aggregate rows; blank lines are skipped; domains normalised; mx-host string accepted", () => {
    const rows = Either.getOrThrow(
      JsonLines.decodeImport(`${JSON.stringify(row)}\n\n${JSON.stringify({ ...row, "is-host": true })}\n`, NOW)
    )
    assert.strictEqual(rows.length, 2)
    assert.strictEqual(rows[0]!.policyDomain.ascii, "example.com")
    assert.strictEqual(rows[0]!.day, "2024-01-09")
    assert.isFalse(rows[0]!.isHost)
    assert.isTrue(rows[1]!.isHost)
    assert.deepStrictEqual(rows[0]!.results[0]!.policy.mxHost, ["mx.example.com"])
    assert.strictEqual(rows[0]!.results[0]!.failureDetails[0]!.resultType, "certificate-expired")
  })

  it("names the line and the reason of the first bad line", () => {
    const good = JSON.stringify(row)
    assert.strictEqual(error(`${good}\n{not json`).line, 2)
    assert.match(error(`${good}\n{not json`).message, /^line 2: not JSON/)
    assert.strictEqual(
      error(`${good}\n\n${JSON.stringify({ ...row, day: "2024-02-30" })}`).message.slice(0, 12),
      "line 3: day:"
    )
    assert.strictEqual(error(JSON.stringify({ ...row, extra: 1 })).message, "line 1: extra: unknown key")
    assert.match(error(JSON.stringify({ ...row, "policy-domain": "a b" })).message, /^line 1: policy-domain: /)
    assert.match(error(JSON.stringify({ ...row, "is-host": "no" })).message, /^line 1: is-host: /)
    const badType = { ...row, results: [{ ...row.results[0], "failure-details": [{ "result-type": "made-up" }] }] }
    assert.match(error(JSON.stringify(badType)).message, /^line 1: results\[0\]\.failure-details\[0\]\.result-type: /)
    assert.strictEqual(error("[1,2]").message, "line 1: expected a JSON object")
  })

  it("refuses a count above MAX_INPUT_COUNT with the line and the key (issue 11 point 3)", () => {
    const big = 2 ** 53 - 1
    const withCount = { ...row, results: [{ ...row.results[0], summary: { "total-successful-session-count": big } }] }
    const e = error(`${JSON.stringify(row)}\n${JSON.stringify(withCount)}`)
    assert.strictEqual(e.line, 2)
    assert.match(
      e.message,
      /results\[0\]\.summary\.total-successful-session-count: 9007199254740991 is above the maximum/
    )
    const detail = {
      ...row,
      results: [
        {
          ...row.results[0],
          "failure-details": [{ "result-type": "certificate-expired", "failed-session-count": 2e9 }]
        }
      ]
    }
    assert.match(
      error(JSON.stringify(detail)).message,
      /^line 1: results\[0\]\.failure-details\[0\]\.failed-session-count: /
    )
  })

  it("refuses deep nesting and over-long lines with the line number, without a stack overflow (point 7)", () => {
    const deep = `{"policy-domain":${"[".repeat(100_000)}${"]".repeat(100_000)}}`
    const e = error(`${JSON.stringify(row)}\n${deep}`)
    assert.strictEqual(e.message, "line 2: JSON nested deeper than 64 levels")
    const long = JSON.stringify({ ...row, "policy-domain": "a".repeat(JsonLines.MAX_LINE_LENGTH) })
    assert.match(error(`\n${long}`).message, /^line 2: line longer than 1048576 characters/)
  })

  it("refuses a day more than one day in the future (point 7)", () => {
    assert.isTrue(Either.isRight(JsonLines.decodeImport(JSON.stringify({ ...row, day: "2024-01-11" }), NOW)))
    assert.strictEqual(
      error(JSON.stringify({ ...row, day: "2024-01-12" })).message,
      "line 1: day 2024-01-12 is in the future (latest accepted: 2024-01-11)"
    )
  })
})
