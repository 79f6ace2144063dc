import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as Datagram from "../src/Datagram.js"

const DAY = "2026-01-15" as Day.Day
const validate = Schema.decodeUnknownEither(Datagram.Datagram)

// Valid datagrams, and values close to them: a key dropped, a value of the wrong type, an unknown code.
const valid = Arbitrary.make(Datagram.Datagram)
const wrong = fc.oneof(fc.constant(null), fc.string(), fc.integer({ min: -5, max: 999 }), fc.constant([]), fc.double())
const mutated = fc
  .tuple(
    valid,
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.constantFrom(
          "d",
          "dpv",
          "pr",
          "policies",
          "policy-type",
          "f",
          "t",
          "c",
          "s",
          "failure-details",
          "policy-string"
        ),
        wrong
      ),
      { minLength: 1, maxLength: 3 }
    )
  )
  .map(([d, edits]) => {
    const j = structuredClone(d) as unknown as Record<string, unknown>
    for (const [at, key, value] of edits) {
      if (key === "d" || key === "dpv" || key === "pr" || key === "policies") {
        j[key] = value
        continue
      }
      const policies = j.policies
      if (!Array.isArray(policies) || policies.length === 0) continue
      const p = policies[at % policies.length] as Record<string, unknown>
      if (key !== "c" && key !== "s") p[key] = value
      else {
        const details = p["failure-details"]
        if (Array.isArray(details) && details.length > 0) (details[0] as Record<string, unknown>)[key] = value
      }
    }
    return j
  })

describe("Datagram", () => {
  it.prop("the receive path's check agrees with the Schema", [fc.oneof(valid, mutated)], ([u]) => {
    assert.strictEqual(Datagram.isDatagram(u), Either.isRight(validate(u)))
  })

  it.prop("every policy is one session, failed by f; each failure detail counts one failed session", [valid], ([d]) => {
    const row = Datagram.toRow(d, DAY)
    if (Either.isLeft(row)) return // `d` that is not a domain name: refused as a whole
    assert.strictEqual(row.right.results.length, d.policies.length)
    d.policies.forEach((p, i) => {
      const r = row.right.results[i]!
      assert.strictEqual(r.summary.totalFailureSessionCount, p.f)
      assert.strictEqual(r.summary.totalSuccessfulSessionCount, 1 - p.f)
      assert.strictEqual(r.failureDetails.length, p["failure-details"]?.length ?? 0)
      assert.strictEqual(r.policy.policyDomain, p["policy-domain"] ?? d.d)
      assert.deepStrictEqual(r.policy.policyString, p["policy-string"] ?? [])
    })
  })

  it("maps every result code to its RFC 8460 name, and refuses an unknown one", () => {
    const names = Object.entries(Datagram.RESULT_CODES).map(([code, name]) => {
      const d = Datagram.decode(
        Buffer.from(`{"d": "x.example","policies":[{"policy-type":2,"failure-details":[{"c":${code}}],"t":1,"f":1}]}`)
      )
      return (
        Either.flatMap(d, (v) => Datagram.toRow(v.datagram, DAY)).pipe(Either.getOrThrow).results[0]!.failureDetails[0]!
          .resultType === name
      )
    })
    assert.isTrue(names.every((x) => x))
    const bad = Datagram.decode(
      Buffer.from('{"d": "x.example","policies":[{"policy-type":2,"failure-details":[{"c":901}],"f":1}]}')
    )
    assert.isTrue(Either.isLeft(bad))
    assert.strictEqual(Either.isLeft(bad) ? bad.left.field : "", "policies[0].failure-details[0].c")
  })

  it("keys by d lower-cased with one trailing dot removed; refuses a d that is not a domain", () => {
    const row = Datagram.toRow({ d: "Mail.Example.COM.", policies: [{ "policy-type": 9, f: 0 }] }, DAY)
    assert.strictEqual(Either.getOrThrow(row).policyDomain.ascii, "mail.example.com")
    assert.strictEqual(Either.getOrThrow(row).results[0]!.policy.policyDomain, "Mail.Example.COM.")
    assert.isTrue(Either.isLeft(Datagram.toRow({ d: "not a domain", policies: [{ "policy-type": 9, f: 0 }] }, DAY)))
  })
})
