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
