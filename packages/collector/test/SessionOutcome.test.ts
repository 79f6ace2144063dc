import { assert, describe, it } from "@effect/vitest"
import { Domain, PolicyResult } from "@tlsrpt/core"
import { Either, FastCheck as fc, Schema } from "effect"
import * as SessionOutcome from "../src/SessionOutcome.js"
import { jsonOutcome } from "./Arbitraries.js"
import { d, json, outcome, T0 } from "./Outcomes.js"

const { check, decodeOutcome, decodeOutcomeJson, encodeOutcome, toRows } = SessionOutcome

const decoded = (input: unknown): SessionOutcome.SessionOutcome =>
  Either.getOrThrowWith(decodeOutcome(input), (e) => new Error(e.message))

const refusal = (input: unknown): { field: string; reason: string } => {
  const r = decodeOutcome(input)
  assert.isTrue(Either.isLeft(r), "expected a refusal")
  const e = (r as Either.Left<SessionOutcome.InvalidOutcome, unknown>).left
  assert.strictEqual(e._tag, "InvalidOutcome")
  return { field: e.field, reason: e.reason }
}

describe("SessionOutcome JSON", () => {
  it("TLSA hex is sent in lower case whatever the caller's case, so spellings merge (docs/design.md#tlsa-hex-case)", () => {
    const policyString = (records: ReadonlyArray<string>) =>
      toRows(
        decoded({
          timestamp: "2024-01-09T12:00:00Z",
          recipientDomain: "example.com",
          mxHost: "mx1.example.com",
          policies: [{ type: "tlsa", records, baseDomain: "mx1.example.com", result: "success" }]
        })
      )[0]!.results[0]!.policy.policyString
    assert.deepStrictEqual(policyString(["3 1 1 ABCDEF0123"]), ["3 1 1 abcdef0123"])
    assert.deepStrictEqual(policyString(["3 1 1 FF", "2 1 1 aA"]), ["2 1 1 aa", "3 1 1 ff"])
    assert.deepStrictEqual(policyString(["3 1 1 Ab"]), policyString(["3 1 1 aB"]))
  })

  it("decodes the documented shape and converts it to rows (docs/design.md#rows-of-an-outcome)", () => {
    const o = decoded({
      timestamp: "2024-01-09T23:59:59Z",
      recipientDomain: "Example.COM",
      mxHost: "MX1.example.com.",
      sendingIp: "192.0.2.1",
      receivingIp: "2001:db8::25",
      mxGreeting: "mx1.example.com ESMTP Postfix",
      policies: [
        {
          type: "sts",
          policyLines: ["version: STSv1", "mode: enforce"],
          mxPatterns: ["*.example.com"],
          result: "success"
        },
        {
          type: "tlsa",
          records: ["3 1 1 ff", "2 1 1 aa"],
          baseDomain: "mx1.example.com",
          result: "failure",
          failureDetails: [{ resultType: "validation-failure", reasonCode: "dane-no-match" }]
        }
      ]
    })
    const rows = toRows(o)
    assert.deepStrictEqual(
      rows.map((r) => ({
        policyDomain: r.policyDomain.ascii,
        day: r.day as string,
        recipientDomain: r.recipientDomain.ascii,
        isHost: r.isHost,
        sendReport: r.sendReport,
        results: r.results
      })),
      [
        {
          policyDomain: "mx1.example.com",
          day: "2024-01-09",
          recipientDomain: "example.com",
          isHost: true,
          sendReport: true,
          results: [
            {
              policy: {
                policyType: "tlsa",
                // sorted (docs/design.md#result-constructors)
                policyString: ["2 1 1 aa", "3 1 1 ff"],
                policyDomain: "mx1.example.com",
                mxHost: []
              },
              summary: { totalSuccessfulSessionCount: 0, totalFailureSessionCount: 1 },
              failureDetails: [
                {
                  resultType: "validation-failure",
                  failedSessionCount: 1,
                  sendingMtaIp: "192.0.2.1",
                  receivingMxHostname: "mx1.example.com",
                  receivingMxHelo: "mx1.example.com ESMTP Postfix",
                  receivingIp: "2001:db8::25",
                  failureReasonCode: "dane-no-match"
                }
              ]
            }
          ]
        },
        {
          policyDomain: "example.com",
          day: "2024-01-09",
          recipientDomain: "example.com",
          isHost: false,
          sendReport: true,
          results: [
            {
              policy: {
                policyType: "sts",
                policyString: ["version: STSv1", "mode: enforce"],
                policyDomain: "example.com",
                mxHost: ["*.example.com"]
              },
              summary: { totalSuccessfulSessionCount: 1, totalFailureSessionCount: 0 },
              failureDetails: []
            }
          ]
        }
      ]
    )
  })

  it("round-trips through its JSON form", () => {
    const o = decoded(json("bücher.example", { timestamp: 1704794400000 }))
    const line = JSON.stringify(encodeOutcome(o))
    assert.deepStrictEqual(JSON.parse(line).recipientDomain, "xn--bcher-kva.example")
    assert.deepStrictEqual(JSON.parse(line).timestamp, "2024-01-09T10:00:00Z")
    assert.deepStrictEqual(Either.getOrThrow(decodeOutcomeJson(line)), o)
  })

  it("refuses CR/LF, bad domains, negative counts, unknown policy types, unknown keys", () => {
    assert.deepStrictEqual(refusal(json("example.com", { mxHost: "mx1.example.com\r\nX-Injected: 1" })).field, "mxHost")
    assert.deepStrictEqual(refusal(json("ex ample")).field, "recipientDomain")
    assert.include(refusal(json("ex ample")).reason, "space")
    const withDetail = (detail: Record<string, unknown>) =>
      json("example.com", {
        policies: [{ type: "sts", result: "failure", failureDetails: [detail] }]
      })
    assert.deepStrictEqual(
      refusal(withDetail({ resultType: "certificate-expired", failedSessionCount: -1 })).field,
      "policies[0].failureDetails[0].failedSessionCount"
    )
    assert.deepStrictEqual(
      refusal(withDetail({ resultType: "certificate-expired", reasonCode: "a\nb" })).field,
      "policies[0].failureDetails[0].reasonCode"
    )
    assert.deepStrictEqual(
      refusal(withDetail({ resultType: "made-up-type" })).field,
      "policies[0].failureDetails[0].resultType"
    )
    const unknownType = refusal(json("example.com", { policies: [{ type: "dane", result: "success" }] }))
    assert.deepStrictEqual(unknownType.field, "policies[0].type")
    assert.deepStrictEqual(refusal(json("example.com", { mxGreeting: "hi\r" })).field, "mxGreeting")
    assert.deepStrictEqual(refusal(json("example.com", { policies: [] })).field, "policies")
    assert.deepStrictEqual(
      refusal(
        json("example.com", {
          policies: [
            { type: "sts", result: "success" },
            { type: "no-policy-found", scope: "recipient-domain", result: "success" }
          ]
        })
      ).field,
      "policies[1]"
    )
    assert.deepStrictEqual(refusal(json("example.com", { sendingIp: "192.0.2.300" })).field, "sendingIp")
    assert.deepStrictEqual(refusal(json("example.com", { timestamp: "yesterday" })).field, "timestamp")
    assert.deepStrictEqual(refusal(json("example.com", { mxhost: "typo.example" })).field, "mxhost")
    assert.deepStrictEqual(
      refusal(
        json("example.com", {
          policies: [{ type: "tlsa", records: ["3 1 1 zz"], baseDomain: "mx.example.com", result: "success" }]
        })
      ).field,
      "policies[0].records[0]"
    )
    assert.isTrue(Either.isLeft(decodeOutcomeJson("{not json")))
  })
})

describe("SessionOutcome.check (typed input)", () => {
  it("accepts what the Schema accepts", () => {
    assert.isUndefined(check(outcome("example.com")))
  })

  it("refuses the same faults as the Schema, with the field", () => {
    const field = (o: unknown) => check(o as SessionOutcome.SessionOutcome)?.field
    const base = outcome("example.com")
    assert.strictEqual(field({ ...base, mxHost: { ascii: "mx\r\n.example.com", unicode: "mx" } }), "mxHost")
    assert.strictEqual(field({ ...base, recipientDomain: "ex ample" }), "recipientDomain")
    assert.strictEqual(field({ ...base, mxGreeting: "a\nb" }), "mxGreeting")
    assert.strictEqual(field({ ...base, timestamp: new Date(Number.NaN) }), "timestamp")
    assert.strictEqual(field({ ...base, policies: [{ type: "dane", result: "success" }] }), "policies[0].type")
    assert.strictEqual(
      field({
        ...base,
        policies: [
          {
            type: "sts",
            result: "failure",
            failureDetails: [{ resultType: "certificate-expired", failedSessionCount: -1 }]
          }
        ]
      }),
      "policies[0].failureDetails[0].failedSessionCount"
    )
    assert.strictEqual(
      field({ ...base, policies: [{ type: "sts", result: "success", policyLines: ["ok", "x\r"] }] }),
      "policies[0].policyLines[1]"
    )
    assert.strictEqual(field({ ...base, policies: [] }), "policies")
  })

  it("refuses a session's failed-session count above MAX_INPUT_COUNT (issue 11 point 3)", () => {
    const base = outcome("example.com")
    const withCount = (failedSessionCount: number) =>
      check({
        ...base,
        policies: [
          {
            type: "sts",
            result: "failure",
            failureDetails: [{ resultType: "certificate-expired", failedSessionCount }]
          }
        ]
      } as unknown as SessionOutcome.SessionOutcome)
    assert.isUndefined(withCount(PolicyResult.MAX_INPUT_COUNT))
    const refused = withCount(2 ** 53 - 1)
    assert.strictEqual(refused?.field, "policies[0].failureDetails[0].failedSessionCount")
    assert.match(refused?.reason ?? "", /up to 1000000000/)
  })
})

describe("check and the Schema are one rule set (internal/OutcomeRules.ts)", () => {
  const withCount = (failedSessionCount: unknown) => ({
    timestamp: "2024-01-09T12:00:00Z",
    recipientDomain: "example.com",
    mxHost: "mx1.example.com",
    policies: [
      { type: "sts", result: "failure", failureDetails: [{ resultType: "validation-failure", failedSessionCount }] }
    ]
  })
  const typed = (u: unknown) =>
    ({
      ...decoded(withCount(1)),
      policies: [
        {
          ...decoded(withCount(1)).policies[0]!,
          failureDetails: [{ resultType: "validation-failure", failedSessionCount: u }]
        }
      ]
    }) as unknown as SessionOutcome.SessionOutcome

  it("the Schema refuses a failed-session count above MAX_INPUT_COUNT, as check does", () => {
    assert.isTrue(Either.isRight(decodeOutcome(withCount(PolicyResult.MAX_INPUT_COUNT))))
    const refused = refusal(withCount(PolicyResult.MAX_INPUT_COUNT + 1))
    assert.strictEqual(refused.field, "policies[0].failureDetails[0].failedSessionCount")
    assert.match(refused.reason, /up to 1000000000/)
  })

  it.prop(
    "any failed-session count: check refuses exactly what the Schema refuses",
    {
      u: fc.oneof(
        fc.integer(),
        fc.double(),
        fc.constantFrom(PolicyResult.MAX_INPUT_COUNT, PolicyResult.MAX_INPUT_COUNT + 1, 2 ** 53, "1", null)
      )
    },
    ({ u }) => {
      assert.strictEqual(check(typed(u)) === undefined, Schema.is(SessionOutcome.SessionOutcome)(typed(u)))
      assert.strictEqual(check(typed(u)) === undefined, Either.isRight(decodeOutcome(withCount(u))))
    }
  )
})

describe("toRows (docs/design.md#rows-of-an-outcome)", () => {
  const tlsa = (baseDomain: string, result: "success" | "failure" = "success"): SessionOutcome.SessionPolicy => ({
    type: "tlsa",
    records: ["3 1 1 abcd"],
    baseDomain: d(baseDomain),
    result
  })
  const npfRecipient: SessionOutcome.SessionPolicy = {
    type: "no-policy-found",
    scope: "recipient-domain",
    result: "success"
  }

  it("puts host rows first, then the recipient-domain row", () => {
    const rows = toRows(outcome("example.com", { policies: [npfRecipient, tlsa("mx1.example.com")] }))
    assert.deepStrictEqual(
      rows.map((r) => [r.policyDomain.ascii, r.isHost, r.results[0]!.policy.policyType]),
      [
        ["mx1.example.com", true, "tlsa"],
        ["example.com", false, "no-policy-found"]
      ]
    )
  })

  it("drops a recipient no-policy-found beside a tlsa result for the same domain (docs/design.md#rows-of-an-outcome)", () => {
    // A domain without MX: the host is the domain itself.
    const direct = outcome("example.com", { mxHost: d("example.com"), policies: [npfRecipient, tlsa("example.com")] })
    assert.deepStrictEqual(
      toRows(direct).map((r) => [r.policyDomain.ascii, r.isHost]),
      [["example.com", true]]
    )
    // An sts result is kept beside it; a host no-policy-found does not trigger the rule.
    const sts = outcome("example.com", {
      mxHost: d("example.com"),
      policies: [{ type: "sts", result: "success" }, tlsa("example.com")]
    })
    assert.deepStrictEqual(toRows(sts).length, 2)
    const hostNpf = outcome("example.com", {
      mxHost: d("example.com"),
      policies: [npfRecipient, { type: "no-policy-found", scope: "mx-host", result: "success" }]
    })
    assert.deepStrictEqual(
      toRows(hostNpf).map((r) => [r.policyDomain.ascii, r.isHost]),
      [
        ["example.com", true],
        ["example.com", false]
      ]
    )
  })

  it("sendReport = !isTlsReport && (!isDmarcReport || failure)", () => {
    const send = (o: Partial<SessionOutcome.SessionOutcome>, failure: boolean) =>
      toRows(outcome("example.com", { ...o, policies: [tlsa("mx1.example.com", failure ? "failure" : "success")] }))[0]!
        .sendReport
    assert.isTrue(send({}, false), "a normal delivery, even all success")
    assert.isTrue(send({}, true))
    assert.isFalse(send({ isTlsReport: true }, false), "a TLS report")
    assert.isFalse(send({ isTlsReport: true }, true), "a TLS report, even with a failure")
    assert.isFalse(send({ isDmarcReport: true }, false), "a DMARC report without failure")
    assert.isTrue(send({ isDmarcReport: true }, true), "a DMARC report with a failure")
    // Failure details alone are not a failure for this rule (docs/design.md#send-report-flag).
    const detailsOnly = outcome("example.com", {
      isDmarcReport: true,
      policies: [
        {
          type: "no-policy-found",
          scope: "recipient-domain",
          result: "success",
          failureDetails: [{ resultType: "certificate-not-trusted" }]
        }
      ]
    })
    assert.isFalse(toRows(detailsOnly)[0]!.sendReport)
  })

  it("builds failure details from the session (docs/design.md#session-failure-details) and keeps explicit counts", () => {
    const o = outcome("example.com", {
      sendingIp: undefined,
      mxGreeting: "",
      policies: [
        {
          type: "tlsa",
          records: [],
          baseDomain: d("mx1.example.com"),
          result: "success",
          failureDetails: [
            { resultType: "tlsa-invalid", reasonCode: "all-unusable-records+ignored", failedSessionCount: 0 },
            { resultType: "validation-failure", additionalInformation: "see https://example.org", reasonCode: "" }
          ]
        }
      ]
    })
    assert.deepStrictEqual(toRows(o)[0]!.results[0]!.failureDetails, [
      {
        resultType: "tlsa-invalid",
        failedSessionCount: 0,
        receivingMxHostname: "mx1.example.com",
        receivingIp: "198.51.100.7",
        failureReasonCode: "all-unusable-records+ignored"
      },
      {
        resultType: "validation-failure",
        failedSessionCount: 1,
        receivingMxHostname: "mx1.example.com",
        receivingIp: "198.51.100.7",
        additionalInformation: "see https://example.org"
      }
    ])
  })

  it("skips IP-literal recipients", () => {
    for (const ip of ["[192.0.2.1]", "[IPv6:2001:db8::1]", "192.0.2.1"]) {
      const o = decoded(json(ip, { mxHost: "mx.example.net" }))
      assert.strictEqual(o.recipientDomain as unknown, ip)
      assert.deepStrictEqual(toRows(o), [])
    }
  })

  it("uses the UTC day of the timestamp", () => {
    const day = (timestamp: unknown) => toRows(decoded(json("example.com", { timestamp })))[0]!.day
    assert.strictEqual(day("2024-01-09T23:59:59.999Z"), "2024-01-09")
    assert.strictEqual(day("2024-01-10T01:30:00+02:00"), "2024-01-09")
    assert.strictEqual(day(Date.UTC(2024, 0, 10)), "2024-01-10")
    assert.strictEqual(toRows(outcome("example.com", { timestamp: T0 }))[0]!.day, "2024-01-09")
  })

  it("defaults a no-policy-found domain by scope", () => {
    const rows = toRows(
      outcome("example.com", {
        policies: [npfRecipient, { type: "no-policy-found", scope: "mx-host", result: "failure" }]
      })
    )
    assert.deepStrictEqual(
      rows.map((r) => r.results[0]!.policy.policyDomain),
      ["mx1.example.com", "example.com"]
    )
  })
})

const isAsciiDomain = (s: string) => /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(s)

describe("toRows properties", () => {
  it.prop("decodes every generated outcome; check and Schema.is agree", { j: jsonOutcome }, ({ j }) => {
    const o = decoded(j)
    assert.isUndefined(check(o))
    assert.isTrue(Schema.is(SessionOutcome.SessionOutcome)(o))
    assert.deepStrictEqual(decoded(encodeOutcome(o)), o)
  })

  it.prop("conserves counts: one session per kept policy, details counted as given", { j: jsonOutcome }, ({ j }) => {
    const o = decoded(j)
    const rows = toRows(o)
    if (typeof o.recipientDomain === "string") {
      assert.deepStrictEqual(rows, [])
      return
    }
    const tlsa = o.policies.find((p) => p.type === "tlsa")
    const q3 = o.policies.some(
      (p) =>
        p.type === "no-policy-found" &&
        p.scope === "recipient-domain" &&
        tlsa?.type === "tlsa" &&
        (p.domain ?? (o.recipientDomain as Domain.Domain)).ascii === tlsa.baseDomain.ascii
    )
    const kept = o.policies.filter((p) => !(q3 && p.type === "no-policy-found" && p.scope === "recipient-domain"))
    assert.strictEqual(rows.length, kept.length)
    const sum = (f: (r: PolicyResult.PolicyResult) => number) =>
      rows.reduce((n, row) => n + row.results.reduce((m, r) => m + f(r), 0), 0)
    assert.strictEqual(
      sum((r) => r.summary.totalSuccessfulSessionCount),
      kept.filter((p) => p.result === "success").length
    )
    assert.strictEqual(
      sum((r) => r.summary.totalFailureSessionCount),
      kept.filter((p) => p.result === "failure").length
    )
    assert.strictEqual(
      sum((r) => r.failureDetails.reduce((m, fd) => m + fd.failedSessionCount, 0)),
      kept.reduce((n, p) => n + (p.failureDetails ?? []).reduce((m, fd) => m + (fd.failedSessionCount ?? 1), 0), 0)
    )
    const failure = o.policies.some((p) => p.result === "failure")
    for (const row of rows) assert.strictEqual(row.sendReport, !o.isTlsReport && (!o.isDmarcReport || failure))
  })

  it.prop("every row's day is the UTC day of the timestamp", { j: jsonOutcome }, ({ j }) => {
    const o = decoded(j)
    const day = o.timestamp.toISOString().slice(0, 10)
    for (const row of toRows(o)) assert.strictEqual(row.day, day)
  })

  it.prop("domains are in A-label form", { j: jsonOutcome }, ({ j }) => {
    const o = decoded(j)
    for (const row of toRows(o)) {
      assert.isTrue(isAsciiDomain(row.policyDomain.ascii), row.policyDomain.ascii)
      assert.isTrue(isAsciiDomain(row.recipientDomain.ascii), row.recipientDomain.ascii)
      assert.strictEqual(row.recipientDomain.ascii, Domain.unsafeMake(j.recipientDomain).ascii)
      for (const r of row.results) {
        assert.strictEqual(r.policy.policyDomain, row.policyDomain.ascii)
        for (const fd of r.failureDetails) assert.strictEqual(fd.receivingMxHostname, Domain.unsafeMake(j.mxHost).ascii)
      }
    }
  })

  it.prop(
    "a CR or LF in any text is refused by both check and the Schema",
    { j: jsonOutcome, which: fc.nat(), bad: fc.constantFrom("\r", "\n", "\r\n") },
    ({ j, which, bad }) => {
      const o = decoded(j) as unknown as Record<string, unknown>
      // Every string slot of the typed value, as setters.
      const slots: Array<() => void> = []
      const visit = (node: unknown) => {
        if (Array.isArray(node))
          node.forEach((v, i) => {
            if (typeof v === "string") slots.push(() => (node[i] = `${v}${bad}`))
            else visit(v)
          })
        else if (typeof node === "object" && node !== null && !(node instanceof Date) && !("ascii" in node))
          for (const [k, v] of Object.entries(node)) {
            if (k === "type" || k === "scope" || k === "result" || k === "resultType" || k === "recipientDomain")
              continue
            if (typeof v === "string") slots.push(() => ((node as Record<string, unknown>)[k] = `${v}${bad}`))
            else visit(v)
          }
      }
      const copy = structuredClone(o)
      visit(copy)
      fc.pre(slots.length > 0)
      slots[which % slots.length]!()
      const typed = copy as unknown as SessionOutcome.SessionOutcome
      assert.isDefined(check(typed))
      assert.isFalse(Schema.is(SessionOutcome.SessionOutcome)(typed))
    }
  )
})
