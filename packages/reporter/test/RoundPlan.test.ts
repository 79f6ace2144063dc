import { assert, describe, it } from "@effect/vitest"
import { type Day, Domain, PolicyResult } from "@tlsrpt/core"
import type { ResultKey, ResultRow } from "@tlsrpt/store"
import { Duration, FastCheck as fc } from "effect"
import * as RoundPlan from "../src/RoundPlan.js"

const day = "2024-01-09" as Day.Day

const row = (over: Partial<ResultRow> & Pick<ResultRow, "id" | "policyDomain" | "recipientDomain">): ResultRow => ({
  day,
  isHost: over.policyDomain !== over.recipientDomain,
  sendReport: true,
  sentToRecipientDomain: false,
  sentToPolicyDomain: false,
  recipientDomainReportingAddresses: [],
  results: [],
  created: new Date(0),
  updated: new Date(0),
  ...over
})

const tlsa = (success: number, failure: number) =>
  PolicyResult.make("tlsa", "mailhost.xn--74h.example", { policyString: ["3 1 1 aa"], success, failure })

describe("RoundPlan.plan (docs/design.md#key-gathering)", () => {
  it("splits on domain equality, not on IsHost, and ORs SendReport per key", () => {
    const keys: Array<ResultKey> = [
      { policyDomain: "a.example", day, recipientDomain: "a.example", sendReport: false },
      { policyDomain: "mx.a.example", day, recipientDomain: "a.example", sendReport: false },
      { policyDomain: "mx.a.example", day, recipientDomain: "b.example", sendReport: true },
      // the same domain as recipient domain and as MX host of another domain: a key in both maps
      { policyDomain: "c.example", day, recipientDomain: "c.example", sendReport: true },
      { policyDomain: "c.example", day, recipientDomain: "d.example", sendReport: false }
    ]
    const p = RoundPlan.plan(keys)
    assert.deepStrictEqual(
      p.recipientDomains.map((k) => [k.policyDomain, k.send]),
      [
        ["a.example", false],
        ["c.example", true]
      ]
    )
    assert.deepStrictEqual(
      p.mxHosts.map((k) => [k.policyDomain, k.send]),
      [
        ["c.example", false],
        ["mx.a.example", true]
      ]
    )
    assert.strictEqual(p.toSend, 2)
  })

  it.prop(
    "every (policy domain, day) appears once per phase and send is the OR of its rows",
    [
      fc.array(
        fc.record({
          policyDomain: fc.constantFrom("a.example", "b.example", "mx.a.example"),
          day: fc.constantFrom("2024-01-08", "2024-01-09") as fc.Arbitrary<Day.Day>,
          recipientDomain: fc.constantFrom("a.example", "b.example"),
          sendReport: fc.boolean()
        })
      )
    ],
    ([keys]) => {
      const p = RoundPlan.plan(keys)
      for (const [list, isRcpt] of [
        [p.recipientDomains, true],
        [p.mxHosts, false]
      ] as const) {
        const ids = list.map((k) => `${k.policyDomain}/${k.day}`)
        assert.strictEqual(new Set(ids).size, ids.length)
        for (const k of list) {
          const mine = keys.filter(
            (r) =>
              r.policyDomain === k.policyDomain && r.day === k.day && (r.policyDomain === r.recipientDomain) === isRcpt
          )
          assert.isTrue(mine.length > 0)
          assert.strictEqual(
            k.send,
            mine.some((r) => r.sendReport)
          )
        }
      }
      assert.strictEqual(p.toSend, [...p.recipientDomains, ...p.mxHosts].filter((k) => k.send).length)
    }
  )
})

describe("RoundPlan.gap (docs/design.md#pacing)", () => {
  it("is min(window / n, maxGap), the window capped when nothing is sent", () => {
    const w = Duration.hours(4)
    const m = Duration.minutes(5)
    assert.strictEqual(Duration.toMillis(RoundPlan.gap(w, m, 0)), 5 * 60_000)
    assert.strictEqual(Duration.toMillis(RoundPlan.gap(w, m, 10)), 5 * 60_000)
    assert.strictEqual(Duration.toMillis(RoundPlan.gap(w, m, 480)), 30_000)
  })
  it("stale limit keeps the two days before the round's day (docs/design.md#stale-cleanup)", () => {
    assert.strictEqual(RoundPlan.staleBefore("2024-01-09" as Day.Day), "2024-01-07")
  })
})

describe("RoundPlan.policiesOf (docs/design.md#mx-host-rewrite)", () => {
  const a = Domain.unsafeMake("☺.example").ascii
  it("phase 1 merges rows in query order, un-rewritten", () => {
    const sts = PolicyResult.make("sts", a, { success: 10, failure: 3 })
    const rows = [
      row({ id: 1, policyDomain: a, recipientDomain: a, results: [sts] }),
      row({ id: 2, policyDomain: "mailhost.xn--74h.example", recipientDomain: a, results: [tlsa(10, 1)] })
    ]
    const ps = RoundPlan.policiesOf("recipient-domain", rows, "mailto", ["mailto:x@xn--74h.example"])
    assert.deepStrictEqual(ps, [sts, tlsa(10, 1)])
  })

  it("phase 2 rewrites policy-domain and mx-host, and does not merge across recipient domains", () => {
    const rows = [
      row({
        id: 3,
        policyDomain: "mailhost.xn--74h.example",
        recipientDomain: "sharedsender.example",
        results: [tlsa(10, 1)]
      }),
      row({ id: 2, policyDomain: "mailhost.xn--74h.example", recipientDomain: a, results: [tlsa(10, 1)] })
    ]
    const ps = RoundPlan.policiesOf("policy-domain", rows, "mailto", ["mailto:r@mailhost.xn--74h.example"])
    assert.deepStrictEqual(
      ps.map((p) => [p.policy.policyDomain, p.policy.mxHost]),
      [
        ["sharedsender.example", ["mailhost.xn--74h.example"]],
        [a, ["mailhost.xn--74h.example"]]
      ]
    )
  })

  it("phase 2 skips rows already reported to identical addresses, in the same order only", () => {
    const addrs = ["mailto:tls-reports@xn--74h.example"]
    const rows = [
      row({
        id: 3,
        policyDomain: "mailhost.xn--74h.example",
        recipientDomain: "sharedsender.example",
        results: [tlsa(1, 1)]
      }),
      row({
        id: 2,
        policyDomain: "mailhost.xn--74h.example",
        recipientDomain: a,
        results: [tlsa(1, 1)],
        recipientDomainReportingAddresses: addrs
      })
    ]
    assert.deepStrictEqual(
      RoundPlan.policiesOf("policy-domain", rows, "mailto", addrs).map((p) => p.policy.policyDomain),
      ["sharedsender.example"]
    )
    assert.strictEqual(
      RoundPlan.policiesOf("policy-domain", rows, "mailto", ["mailto:other@example.com", ...addrs]).length,
      2
    )
  })

  it("phase 2 compares the stored addresses per destination kind (mailto and https apart)", () => {
    // Phase 1 stored the recipient domain's whole list, mailto and https mixed.
    const stored = ["mailto:tls-reports@xn--74h.example", "https://reports.example/tlsrpt"]
    const rows = [
      row({
        id: 3,
        policyDomain: "mailhost.xn--74h.example",
        recipientDomain: "sharedsender.example",
        results: [tlsa(1, 1)]
      }),
      row({
        id: 2,
        policyDomain: "mailhost.xn--74h.example",
        recipientDomain: a,
        results: [tlsa(1, 1)],
        recipientDomainReportingAddresses: stored
      })
    ]
    const domains = (kind: "mailto" | "https", addrs: ReadonlyArray<string>) =>
      RoundPlan.policiesOf("policy-domain", rows, kind, addrs).map((p) => p.policy.policyDomain)
    // The MX host's record lists only the same mail address: ☺.example's row is skipped for mail.
    assert.deepStrictEqual(domains("mailto", ["mailto:tls-reports@xn--74h.example"]), ["sharedsender.example"])
    // The same https URI: skipped for https as well. Strings compare as written in DNS (docs/design.md#per-key-steps
    // step 11), so another spelling counts as another list.
    assert.deepStrictEqual(domains("https", ["https://reports.example/tlsrpt"]), ["sharedsender.example"])
    assert.deepStrictEqual(domains("https", ["HTTPS://reports.example/tlsrpt"]), ["sharedsender.example", a])
    // A different https URI has not seen ☺.example's results.
    assert.deepStrictEqual(domains("https", ["https://other.example/"]), ["sharedsender.example", a])
    assert.strictEqual(RoundPlan.kindOf("MAILTO:x@y"), "mailto")
    assert.strictEqual(RoundPlan.kindOf("https://x"), "https")
    assert.strictEqual(RoundPlan.kindOf("ftp://x"), undefined)
  })

  it("already-sent guard (docs/design.md#already-sent-guard)", () => {
    const r1 = row({ id: 1, policyDomain: a, recipientDomain: a, sentToRecipientDomain: true })
    assert.isTrue(RoundPlan.alreadySent("recipient-domain", [r1]))
    assert.isFalse(RoundPlan.alreadySent("policy-domain", [{ ...r1, sentToRecipientDomain: false }]))
    const mx = row({ id: 2, policyDomain: "mx.example", recipientDomain: a, sentToPolicyDomain: true })
    assert.isTrue(RoundPlan.alreadySent("policy-domain", [mx]))
    assert.isFalse(RoundPlan.alreadySent("policy-domain", [mx, { ...mx, id: 3, sentToPolicyDomain: false }]))
  })
})
