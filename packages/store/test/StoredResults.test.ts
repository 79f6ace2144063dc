import { assert, describe, it } from "@effect/vitest"
import { PolicyResult } from "@tlsrpt/core"
import { Either, Schema } from "effect"
import * as StoredResults from "../src/StoredResults.js"

const Results = Schema.Array(PolicyResult.PolicyResult)

describe("StoredResults (the results column)", () => {
  it.prop("writes exactly what the PolicyResult Schema encodes", [Results], ([results]) => {
    assert.deepStrictEqual(StoredResults.toWire(results), Schema.encodeSync(Results)(results))
  })

  it.prop("reads back what it wrote", [Results], ([results]) => {
    assert.deepStrictEqual(StoredResults.decode(StoredResults.encode(results)), Either.right(results))
  })

  it("reads other accepted spellings through the Schema (nulls, a string mx-host, missing lists)", () => {
    const text = JSON.stringify([
      {
        policy: {
          "policy-type": "sts",
          "policy-string": null,
          "policy-domain": "a.example",
          "mx-host": "mx.a.example"
        },
        summary: { "total-successful-session-count": 1, "total-failure-session-count": 2 },
        "failure-details": [{ "result-type": "certificate-expired", "failed-session-count": 2, "receiving-ip": null }]
      },
      { policy: { "policy-type": "no-policy-found", "policy-domain": "b.example" }, summary: {} }
    ])
    assert.deepStrictEqual(
      StoredResults.decode(text),
      Either.right([
        PolicyResult.make("sts", "a.example", {
          mxHost: ["mx.a.example"],
          success: 1,
          failure: 2,
          failureDetails: [{ resultType: "certificate-expired", failedSessionCount: 2 }]
        }),
        PolicyResult.make("no-policy-found", "b.example")
      ])
    )
  })

  it("reads a count past 2^53 (stored before sums saturated) clamped to MAX_COUNT, as the Schema does (issue 11 point 3)", () => {
    const text = JSON.stringify([
      {
        policy: { "policy-type": "sts", "policy-string": [], "policy-domain": "a.example", "mx-host": [] },
        summary: { "total-successful-session-count": 2 ** 54, "total-failure-session-count": 1 },
        "failure-details": [{ "result-type": "certificate-expired", "failed-session-count": 2 ** 60 }]
      }
    ])
    const fast = Either.getOrThrow(StoredResults.decode(text))
    assert.strictEqual(fast[0]!.summary.totalSuccessfulSessionCount, PolicyResult.MAX_COUNT)
    assert.strictEqual(fast[0]!.failureDetails[0]!.failedSessionCount, PolicyResult.MAX_COUNT)
    assert.deepStrictEqual(fast, Schema.decodeSync(Schema.parseJson(Schema.Array(PolicyResult.PolicyResult)))(text))
    // and it encodes again (the Schema's encoder accepts only safe integers)
    assert.strictEqual(
      StoredResults.encode(fast),
      JSON.stringify(Schema.encodeSync(Schema.Array(PolicyResult.PolicyResult))(fast))
    )
  })

  it("refuses text that is no list of results", () => {
    for (const text of ["not json", "{}", '[{"policy":{}}]', '[{"policy":{"policy-type":"sts"},"summary":{}}]']) {
      assert.isTrue(Either.isLeft(StoredResults.decode(text)), text)
    }
    const negative = StoredResults.encode([PolicyResult.make("sts", "a.example")]).replace(
      '"total-successful-session-count":0',
      '"total-successful-session-count":-1'
    )
    assert.isTrue(Either.isLeft(StoredResults.decode(negative)))
  })
})
