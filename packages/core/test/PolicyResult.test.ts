import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc, Schema } from "effect"
import * as PolicyResult from "../src/PolicyResult.js"

type PR = PolicyResult.PolicyResult
type FD = PolicyResult.FailureDetails

const detail = (resultType: PolicyResult.ResultType, fields: Partial<FD> = {}): FD => ({
  resultType,
  failedSessionCount: 1,
  ...fields
})

const sts = (options?: Parameters<typeof PolicyResult.make>[2]) =>
  PolicyResult.make("sts", "xn--74h.example", {
    policyString: ["version: STSv1", "mode: enforce"],
    mxHost: ["*.xn--74h.example"],
    ...options
  })

const decode = Schema.decodeUnknownSync(PolicyResult.PolicyResult)

describe("PolicyResult.merge: policy equality (docs/design.md#policy-merge)", () => {
  it("equal policies merge, counters add up", () => {
    const out = PolicyResult.merge([sts({ success: 1, failure: 2 })], [sts({ success: 10, failure: 20 })])
    assert.strictEqual(out.length, 1)
    assert.deepStrictEqual(out[0]!.summary, { totalSuccessfulSessionCount: 11, totalFailureSessionCount: 22 })
  })

  it("type, domain, policy strings and mx-hosts all take part; list order matters", () => {
    const base = sts()
    const differing: ReadonlyArray<PR> = [
      { ...base, policy: { ...base.policy, policyType: "tlsa" } },
      { ...base, policy: { ...base.policy, policyDomain: "other.example" } },
      { ...base, policy: { ...base.policy, policyDomain: "XN--74H.example" } },
      { ...base, policy: { ...base.policy, policyString: ["mode: enforce", "version: STSv1"] } },
      { ...base, policy: { ...base.policy, policyString: ["version: STSv1"] } },
      { ...base, policy: { ...base.policy, mxHost: ["*.xn--74h.example", "mx.example"] } },
      { ...base, policy: { ...base.policy, mxHost: [] } }
    ]
    for (const other of differing) {
      assert.isFalse(PolicyResult.policyEquals(base.policy, other.policy), JSON.stringify(other.policy))
      assert.strictEqual(PolicyResult.merge([base], [other]).length, 2)
    }
    assert.isTrue(PolicyResult.policyEquals(base.policy, sts().policy))
  })

  it("nil and empty lists are equal: null, missing and [] all decode to []", () => {
    const wire = (extra: object) => ({
      policy: { "policy-type": "no-policy-found", "policy-domain": "mox.example", ...extra },
      summary: { "total-successful-session-count": 1, "total-failure-session-count": 0 }
    })
    const a = decode(wire({ "policy-string": null, "mx-host": null }))
    const b = decode(wire({ "policy-string": [], "mx-host": [] }))
    const c = decode(wire({}))
    assert.isTrue(PolicyResult.policyEquals(a.policy, b.policy))
    const out = PolicyResult.merge([], [a, b, c])
    assert.strictEqual(out.length, 1)
    assert.strictEqual(out[0]!.summary.totalSuccessfulSessionCount, 3)
    assert.deepStrictEqual(out[0]!.failureDetails, [])
  })

  it("each result goes to the FIRST equal policy; new policies are appended in order", () => {
    const a = PolicyResult.make("sts", "a.example", { success: 1 })
    const b = PolicyResult.make("tlsa", "b.example", { success: 1 })
    const c = PolicyResult.make("no-policy-found", "c.example", { success: 1 })
    // the existing list may hold duplicates (appended results are not de-duplicated)
    const out = PolicyResult.merge([a, b, a], [c, a, b, c])
    assert.deepStrictEqual(
      out.map((p) => [p.policy.policyDomain, p.summary.totalSuccessfulSessionCount]),
      [
        ["a.example", 2],
        ["b.example", 2],
        ["a.example", 1],
        ["c.example", 2]
      ]
    )
  })

  it("does not modify its inputs", () => {
    const existing = [sts({ success: 1, failureDetails: [detail("certificate-expired")] })]
    const snapshot = structuredClone(existing)
    PolicyResult.merge(existing, [sts({ success: 1, failureDetails: [detail("certificate-expired")] })])
    assert.deepStrictEqual(existing, snapshot)
  })
})

describe("PolicyResult.add (docs/design.md#counter-and-detail-add)", () => {
  it("counters are clamped at zero; a negative success undoes one (docs/design.md#session-failure-details)", () => {
    const r = sts({ success: 1, failure: 0 })
    assert.deepStrictEqual(PolicyResult.add(r, -1, 1).summary, {
      totalSuccessfulSessionCount: 0,
      totalFailureSessionCount: 1
    })
    assert.deepStrictEqual(PolicyResult.add(r, -5, -5).summary, {
      totalSuccessfulSessionCount: 0,
      totalFailureSessionCount: 0
    })
    // clamping happens per addition: the lost -4 is not remembered
    assert.strictEqual(PolicyResult.add(PolicyResult.add(r, -5, 0), 2, 0).summary.totalSuccessfulSessionCount, 2)
    // through merge as well
    const undone = PolicyResult.merge([sts()], [sts({ success: -1 })])
    assert.strictEqual(undone[0]!.summary.totalSuccessfulSessionCount, 0)
  })

  it("details equal in everything but the count are added together", () => {
    const fields = {
      sendingMtaIp: "1.2.3.4",
      receivingMxHostname: "mx.example",
      receivingMxHelo: "mx.example",
      receivingIp: "4.3.2.1",
      additionalInformation: "https://x.example/",
      failureReasonCode: "code"
    }
    const r = sts({ failureDetails: [detail("certificate-expired", { ...fields, failedSessionCount: 3 })] })
    const out = PolicyResult.add(r, 0, 2, [detail("certificate-expired", { ...fields, failedSessionCount: 2 })])
    assert.deepStrictEqual(out.failureDetails, [detail("certificate-expired", { ...fields, failedSessionCount: 5 })])
  })

  it("a detail differing in any one key field is appended", () => {
    const fields = {
      sendingMtaIp: "1.2.3.4",
      receivingMxHostname: "mx.example",
      receivingMxHelo: "mx.example",
      receivingIp: "4.3.2.1",
      additionalInformation: "info",
      failureReasonCode: "code"
    }
    const base = detail("certificate-expired", fields)
    const variants: ReadonlyArray<FD> = [
      { ...base, resultType: "certificate-host-mismatch" },
      ...(Object.keys(fields) as Array<keyof typeof fields>).map((k) => ({ ...base, [k]: `${fields[k]}-other` }))
    ]
    for (const v of variants) {
      assert.isFalse(PolicyResult.detailsKeyEquals(base, v), JSON.stringify(v))
      assert.strictEqual(PolicyResult.add(sts({ failureDetails: [base] }), 0, 0, [v]).failureDetails.length, 2)
    }
  })

  it('an absent field equals the empty string (mox writes "")', () => {
    const a = detail("starttls-not-supported")
    const b = detail("starttls-not-supported", { sendingMtaIp: "", failureReasonCode: "", additionalInformation: "" })
    assert.isTrue(PolicyResult.detailsKeyEquals(a, b))
    assert.strictEqual(
      PolicyResult.add(sts({ failureDetails: [a] }), 0, 0, [b]).failureDetails[0]!.failedSessionCount,
      2
    )
  })

  it("new details go to the first equal detail; an appended result's own duplicates stay", () => {
    const d = detail("validation-failure", { failureReasonCode: "x" })
    const appended = PolicyResult.merge([], [sts({ failureDetails: [d, d] })])
    assert.deepStrictEqual(appended[0]!.failureDetails, [d, d])
    const merged = PolicyResult.merge(appended, [sts({ failureDetails: [d] })])
    assert.deepStrictEqual(merged[0]!.failureDetails, [{ ...d, failedSessionCount: 2 }, d])
    // details passed to add are merged among themselves, since each is added in turn
    assert.deepStrictEqual(PolicyResult.add(sts(), 0, 0, [d, d]).failureDetails, [{ ...d, failedSessionCount: 2 }])
  })
})

describe("PolicyResult helpers", () => {
  it("make: docs/design.md#result-constructors MakeResult", () => {
    assert.deepStrictEqual(PolicyResult.make("tlsa", "mx.example"), {
      policy: { policyType: "tlsa", policyString: [], policyDomain: "mx.example", mxHost: [] },
      summary: { totalSuccessfulSessionCount: 0, totalFailureSessionCount: 0 },
      failureDetails: []
    })
  })

  it("hasFailure: a failure count or any detail, even with zero counters (docs/design.md#failure-rule)", () => {
    assert.isFalse(PolicyResult.hasFailure([]))
    assert.isFalse(PolicyResult.hasFailure([sts({ success: 5 })]))
    assert.isTrue(PolicyResult.hasFailure([sts({ success: 5 }), sts({ failure: 1 })]))
    const zero = sts({ failureDetails: [detail("starttls-not-supported", { failedSessionCount: 0 })] })
    assert.isTrue(PolicyResult.hasFailure([zero]))
  })
})

// Small alphabets, so that equal policies and equal details turn up often.
const policyArb: fc.Arbitrary<PolicyResult.Policy> = fc.record({
  policyType: fc.constantFrom("sts" as const, "tlsa" as const, "no-policy-found" as const),
  policyString: fc.array(fc.constantFrom("a", "b"), { maxLength: 2 }),
  policyDomain: fc.constantFrom("a.example", "b.example"),
  mxHost: fc.array(fc.constantFrom("mx1", "mx2"), { maxLength: 1 })
})
const detailArb: fc.Arbitrary<FD> = fc.record(
  {
    resultType: fc.constantFrom("certificate-expired" as const, "validation-failure" as const),
    sendingMtaIp: fc.constantFrom("1.2.3.4", ""),
    receivingIp: fc.constantFrom("4.3.2.1"),
    failedSessionCount: fc.nat({ max: 1000 }),
    failureReasonCode: fc.constantFrom("x", "y")
  },
  { requiredKeys: ["resultType", "failedSessionCount"] }
)
const resultArb: fc.Arbitrary<PR> = fc.record({
  policy: policyArb,
  summary: fc.record({
    totalSuccessfulSessionCount: fc.nat({ max: 1000 }),
    totalFailureSessionCount: fc.nat({ max: 1000 })
  }),
  failureDetails: fc.array(detailArb, { maxLength: 4 })
})
const results = fc.array(resultArb, { maxLength: 12 })

const totals = (rs: ReadonlyArray<PR>) => ({
  success: rs.reduce((n, r) => n + r.summary.totalSuccessfulSessionCount, 0),
  failure: rs.reduce((n, r) => n + r.summary.totalFailureSessionCount, 0),
  failedSessions: rs.reduce((n, r) => n + r.failureDetails.reduce((m, d) => m + d.failedSessionCount, 0), 0)
})

describe("PolicyResult.merge properties", () => {
  it.prop("counts are conserved when nothing is negative", [results, results], ([existing, incoming]) => {
    const out = PolicyResult.merge(existing, incoming)
    const before = totals([...existing, ...incoming])
    assert.deepStrictEqual(totals(out), before)
    assert.isAtMost(out.length, existing.length + incoming.length)
  })

  it.prop("policies keep the order of their first appearance", [results], ([incoming]) => {
    const out = PolicyResult.merge([], incoming)
    const firstSeen: Array<PolicyResult.Policy> = []
    for (const r of incoming) {
      if (!firstSeen.some((p) => PolicyResult.policyEquals(p, r.policy))) firstSeen.push(r.policy)
    }
    assert.deepStrictEqual(
      out.map((r) => r.policy),
      firstSeen
    )
  })

  it.prop("merge(merge([], a), b) equals merge([], a ++ b)", [results, results], ([a, b]) => {
    assert.deepStrictEqual(PolicyResult.merge(PolicyResult.merge([], a), b), PolicyResult.merge([], [...a, ...b]))
  })

  it.prop(
    "schema arbitraries: the wire form round-trips through JSON; merge([], [r]) is [r]",
    [PolicyResult.PolicyResult],
    ([r]) => {
      const wire = Schema.encodeSync(PolicyResult.PolicyResult)(r)
      assert.deepStrictEqual(decode(JSON.parse(JSON.stringify(wire))), r)
      assert.deepStrictEqual(PolicyResult.merge([], [r]), [r])
    }
  )
})

describe("PolicyResult counts stay in the safe-integer range (issue 11 point 3)", () => {
  const max = PolicyResult.MAX_COUNT
  it("add saturates at MAX_COUNT instead of leaving the safe range", () => {
    const r = sts({
      success: max,
      failure: max,
      failureDetails: [detail("certificate-expired", { failedSessionCount: max })]
    })
    const out = PolicyResult.add(r, max, 1, [detail("certificate-expired", { failedSessionCount: max })])
    assert.deepStrictEqual(out.summary, { totalSuccessfulSessionCount: max, totalFailureSessionCount: max })
    assert.strictEqual(out.failureDetails[0]!.failedSessionCount, max)
    // what add returns always encodes
    Schema.encodeSync(PolicyResult.PolicyResult)(out)
  })

  it.prop(
    "merged sums always encode and decode back to themselves",
    [fc.array(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { minLength: 1, maxLength: 5 })],
    ([counts]) => {
      const merged = counts.reduce<Array<PR>>(
        (acc, n) => PolicyResult.merge(acc, [sts({ success: n, failure: n })]),
        []
      )
      const wire = Schema.encodeSync(Schema.Array(PolicyResult.PolicyResult))(merged)
      assert.deepStrictEqual(Schema.decodeUnknownSync(Schema.Array(PolicyResult.PolicyResult))(wire), merged)
    }
  )

  it("a count beyond the safe range reads clamped to MAX_COUNT (lenient decode)", () => {
    const decoded = Schema.decodeUnknownSync(PolicyResult.Summary)({
      "total-successful-session-count": 2 ** 54,
      "total-failure-session-count": 3
    })
    assert.deepStrictEqual(decoded, { totalSuccessfulSessionCount: max, totalFailureSessionCount: 3 })
  })
})

describe("PolicyResult fast guards agree with the Schemas they stand for", () => {
  const candidates = fc.oneof(
    fc.anything(),
    fc.constantFrom(...PolicyResult.PolicyType.literals, ...PolicyResult.ResultType.literals, "Other", "STS"),
    fc.integer(),
    fc.double(),
    fc.constantFrom(PolicyResult.MAX_INPUT_COUNT, PolicyResult.MAX_INPUT_COUNT + 1, Number.MAX_SAFE_INTEGER + 2, -0)
  )
  it.prop("isPolicyType, isResultType, isInputCount = Schema.is", { u: candidates }, ({ u }) => {
    assert.strictEqual(PolicyResult.isPolicyType(u), Schema.is(PolicyResult.PolicyType)(u))
    assert.strictEqual(PolicyResult.isResultType(u), Schema.is(PolicyResult.ResultType)(u))
    assert.strictEqual(PolicyResult.isInputCount(u), Schema.is(PolicyResult.InputCount)(u))
  })
  it.prop("isCount is what the lenient Summary Schema reads", { u: candidates }, ({ u }) => {
    fc.pre(u !== undefined && u !== null) // absent counts decode to 0
    const decoded = Schema.decodeUnknownEither(PolicyResult.Summary)({ "total-successful-session-count": u })
    assert.strictEqual(PolicyResult.isCount(u), decoded._tag === "Right")
  })
})
