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

const error = (text: string) => Either.flip(JsonLines.decodeImport(text)).pipe(Either.getOrThrow)

describe("JsonLines", () => {
  it("decodes aggregate rows; blank lines are skipped; domains normalised; mx-host string accepted", () => {
    const rows = Either.getOrThrow(
      JsonLines.decodeImport(`${JSON.stringify(row)}\n\n${JSON.stringify({ ...row, "is-host": true })}\n`)
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
})
