/**
 * Our own simulations of the report round on TestClock, beyond mox's reference test: the improvements of
 * docs/design.md#where-we-differ-from-mox (temporary DNS errors keep and retry, each report describes its own day, https), keys in
 * both phases, leftovers from older days, and a round interrupted at a random point.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import type { TestAnswer } from "@tlsrpt/dns"
import { defaultConfig, type ReporterConfig, ReporterLive } from "@tlsrpt/reporter"
import type { ReportMailService } from "@tlsrpt/mail"
import { Outbox, ResultStore, SuppressionList } from "@tlsrpt/store"
import { Duration, Effect, FastCheck as fc, Fiber, Ref, TestClock } from "effect"
import { deliverAndParse, makeEnv, nextRound, record, resultRow, startSchedule } from "@tlsrpt/testkit/simulation"

const START = Date.parse("2024-01-10T00:05:00Z")
const DAY = "2024-01-09" as Day.Day
const SUBMITTER = "reports.example"
const config: ReporterConfig = { ...defaultConfig, https: false }

const withEnv = <A, E, R>(
  dnsInit: Record<string, TestAnswer>,
  body: (dns: Ref.Ref<ReadonlyMap<string, TestAnswer>>) => Effect.Effect<A, E, R>,
  wrapMail?: (mail: ReportMailService) => ReportMailService
) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(START)
    const dns = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(new Map(Object.entries(dnsInit)))
    const env = yield* makeEnv({ submitter: SUBMITTER, dns, ...(wrapMail ? { wrapMail } : {}) })
    return yield* body(dns).pipe(Effect.provide(env))
  })

const setDns = (dns: Ref.Ref<ReadonlyMap<string, TestAnswer>>, name: string, answer: TestAnswer) =>
  Ref.update(dns, (m) => new Map(m).set(name, answer))

describe("temporary DNS errors (docs/design.md#temporary-dns-errors-keep-results)", () => {
  it.effect("a SERVFAIL that recovers within the round: results kept, exactly one report", () =>
    withEnv({ "_smtp._tls.a.example.": { error: "servfail" } }, (dns) =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 2 })
        ])
        // DNS recovers one minute into the round, before the first retry (5 min).
        yield* Effect.sleep("1 minute").pipe(
          Effect.zipRight(setDns(dns, "_smtp._tls.a.example.", record("mailto:tlsrpt@a.example"))),
          Effect.fork
        )
        const { rounds, fiber } = yield* startSchedule(config)
        const first = yield* nextRound(rounds)
        assert.deepStrictEqual(
          first.keys.map((k) => k.outcome),
          ["sent"]
        )
        const sent = yield* deliverAndParse
        assert.deepStrictEqual(
          sent.map((s) => [s.to, s.report.reportId]),
          [["tlsrpt@a.example", "20240109.a.example@reports.example"]]
        )
        yield* nextRound(rounds)
        assert.deepStrictEqual(yield* deliverAndParse, [])
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* store.listResults(), [])
      })
    )
  )

  it.effect("a failure through the whole round keeps the key; the next round reports it for its own day", () =>
    withEnv({ "_smtp._tls.a.example.": { error: "timeout" } }, (dns) =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 1 })
        ])
        const { rounds, fiber } = yield* startSchedule(config)
        const first = yield* nextRound(rounds)
        assert.deepStrictEqual(
          first.kept.map((k) => [k.policyDomain, k.day, k.outcome]),
          [["a.example", DAY, "kept-temporary"]]
        )
        assert.strictEqual((yield* store.listResults()).length, 1)
        assert.deepStrictEqual(yield* deliverAndParse, [])

        yield* setDns(dns, "_smtp._tls.a.example.", record("mailto:tlsrpt@a.example"))
        const second = yield* nextRound(rounds)
        assert.strictEqual(second.day, "2024-01-10")
        const sent = yield* deliverAndParse
        assert.strictEqual(sent.length, 1)
        // Unlike mox (docs/design.md#each-report-describes-its-own-day), the leftover day keeps its own date range and report-id.
        assert.strictEqual(sent[0]!.report.reportId, "20240109.a.example@reports.example")
        assert.strictEqual(sent[0]!.report.dateRange.startDatetime.toISOString(), "2024-01-09T00:00:00.000Z")
        yield* nextRound(rounds)
        assert.deepStrictEqual(yield* deliverAndParse, [])
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* store.listResults(), [])
      })
    )
  )

  it.effect("a syntax error or several records discard the results (RFC 8460 §3)", () =>
    withEnv(
      {
        "_smtp._tls.bad.example.": ["v=TLSRPTv1;"],
        "_smtp._tls.two.example.": ["v=TLSRPTv1; rua=mailto:a@two.example", "v=TLSRPTv1; rua=mailto:b@two.example"]
      },
      () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([
            resultRow({ policyDomain: "bad.example", recipientDomain: "bad.example", day: DAY, failure: 1 }),
            resultRow({ policyDomain: "two.example", recipientDomain: "two.example", day: DAY, failure: 1 })
          ])
          const { rounds, fiber } = yield* startSchedule(config)
          const first = yield* nextRound(rounds)
          assert.deepStrictEqual(first.keys.map((k) => k.outcome).sort(), ["discarded-multiple", "discarded-syntax"])
          assert.deepStrictEqual(yield* deliverAndParse, [])
          assert.deepStrictEqual(yield* store.listResults(), [])
          yield* Fiber.interrupt(fiber)
        })
    )
  )
})

describe("keys and days", () => {
  it.effect("the same domain as recipient domain and as MX host: two reports with distinct report-ids", () =>
    withEnv({ "_smtp._tls.c.example.": record("mailto:tlsrpt@c.example") }, () =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({ policyDomain: "c.example", recipientDomain: "c.example", day: DAY, failure: 1 }),
          resultRow({ policyDomain: "c.example", recipientDomain: "d.example", day: DAY, failure: 1 })
        ])
        const { rounds, fiber } = yield* startSchedule(config)
        yield* nextRound(rounds)
        const sent = yield* deliverAndParse
        assert.deepStrictEqual(
          sent.map((s) => [s.report.reportId, s.report.policies.map((p) => [p.policy.policyDomain, p.policy.mxHost])]),
          [
            ["20240109.c.example@reports.example", [["c.example", []]]],
            // phase 2 skips the c.example row (already reported to the same rua) and rewrites d.example's
            ["20240109.c.example+mx@reports.example", [["d.example", ["c.example"]]]]
          ]
        )
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* store.listResults(), [])
      })
    )
  )

  it.effect("a key left over from an older day is reported with its own day, beside today's", () =>
    withEnv({ "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example") }, () =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({
            policyDomain: "a.example",
            recipientDomain: "a.example",
            day: "2024-01-08" as Day.Day,
            failure: 1
          }),
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 3 }),
          // older than the stale limit (two full days before the round's day): removed unsent
          resultRow({
            policyDomain: "a.example",
            recipientDomain: "a.example",
            day: "2024-01-06" as Day.Day,
            failure: 9
          })
        ])
        const { rounds, fiber } = yield* startSchedule(config)
        yield* nextRound(rounds)
        const sent = yield* deliverAndParse
        assert.deepStrictEqual(
          sent.map((s) => [s.report.reportId, s.report.policies[0]!.summary.totalFailureSessionCount]),
          [
            ["20240108.a.example@reports.example", 1],
            ["20240109.a.example@reports.example", 3]
          ]
        )
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* store.listResults(), [])
      })
    )
  )

  it.effect("https reporting URIs get the gzip JSON body (RFC 8460 §3)", () =>
    withEnv({ "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example", "https://reports.a.example/tlsrpt") }, () =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 1 })
        ])
        const { rounds, fiber } = yield* startSchedule({ ...config, https: true })
        yield* nextRound(rounds)
        const sent = yield* deliverAndParse
        assert.deepStrictEqual(
          sent.map((s) => [s.kind, s.to]),
          [
            ["mailto", "tlsrpt@a.example"],
            ["https", "https://reports.a.example/tlsrpt"]
          ]
        )
        assert.deepStrictEqual(sent[1]!.report, sent[0]!.report)
        yield* Fiber.interrupt(fiber)
      })
    )
  )
})

describe("destinations", () => {
  it.effect("a mixed mailto/https record in both phases: each kind skips only what its own addresses got", () =>
    withEnv(
      {
        "_smtp._tls.c.example.": record("mailto:tlsrpt@c.example", "https://r.c.example/tlsrpt"),
        "_smtp._tls.mx.example.": record("mailto:tlsrpt@c.example", "https://other.example/tlsrpt")
      },
      () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([
            resultRow({ policyDomain: "c.example", recipientDomain: "c.example", day: DAY, failure: 1 }),
            resultRow({ policyDomain: "mx.example", recipientDomain: "c.example", day: DAY, failure: 1 }),
            resultRow({ policyDomain: "mx.example", recipientDomain: "d.example", day: DAY, failure: 1 })
          ])
          const { rounds, fiber } = yield* startSchedule({ ...config, https: true })
          yield* nextRound(rounds)
          const sent = yield* deliverAndParse
          assert.deepStrictEqual(
            sent.map((s) => [s.kind, s.to, s.report.reportId, s.report.policies.map((p) => p.policy.policyDomain)]),
            [
              ["mailto", "tlsrpt@c.example", "20240109.c.example@reports.example", ["c.example", "mx.example"]],
              [
                "https",
                "https://r.c.example/tlsrpt",
                "20240109.c.example@reports.example",
                ["c.example", "mx.example"]
              ],
              // The same mail address got c.example's results in phase 1: only d.example's row is new to it.
              ["mailto", "tlsrpt@c.example", "20240109.mx.example@reports.example", ["d.example"]],
              // This https URI never got c.example's report: both recipient domains.
              [
                "https",
                "https://other.example/tlsrpt",
                "20240109.mx.example@reports.example",
                ["c.example", "d.example"]
              ]
            ]
          )
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual(yield* store.listResults(), [])
        })
    )
  )

  it.effect("mail goes to the address as published (RFC 5321 §2.4); suppression still matches its normal form", () =>
    withEnv(
      { "_smtp._tls.a.example.": record("mailto:TLS-Reports@A.Example", "mailto:Other.Box@\u263a.example") },
      () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([
            resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 1 })
          ])
          yield* (yield* SuppressionList).add({
            address: "other.box@xn--74h.example",
            until: new Date(START + 86_400_000)
          })
          const { rounds, fiber } = yield* startSchedule(config)
          yield* nextRound(rounds)
          const sent = yield* deliverAndParse
          assert.deepStrictEqual(
            sent.map((s) => s.to),
            ["TLS-Reports@a.example"]
          )
          const outbox = yield* (yield* Outbox).list()
          assert.deepStrictEqual(
            outbox.map((m) => m.destination),
            ["TLS-Reports@a.example"]
          )
          yield* Fiber.interrupt(fiber)
        })
    )
  )

  it.effect("an https reporting URI can be suppressed, in any spelling, until the suppression expires", () =>
    withEnv({ "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example", "https://reports.a.example/tlsrpt") }, () =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        const row = (day: Day.Day) =>
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day, failure: 1 })
        yield* store.addResults([row(DAY)])
        // Expires 2024-01-10T12:00Z: active for the first round, over by the second.
        yield* (yield* SuppressionList).add({
          address: "HTTPS://Reports.A.Example:443/tlsrpt",
          until: new Date(Date.parse("2024-01-10T12:00:00Z"))
        })
        const { rounds, fiber } = yield* startSchedule({ ...config, https: true })
        yield* nextRound(rounds)
        assert.deepStrictEqual(
          (yield* deliverAndParse).map((s) => [s.kind, s.to]),
          [["mailto", "tlsrpt@a.example"]]
        )
        yield* store.addResults([row("2024-01-10" as Day.Day)])
        yield* nextRound(rounds)
        assert.deepStrictEqual(
          (yield* deliverAndParse).map((s) => [s.kind, s.to]),
          [
            ["mailto", "tlsrpt@a.example"],
            ["https", "https://reports.a.example/tlsrpt"]
          ]
        )
        yield* Fiber.interrupt(fiber)
      })
    )
  )
})

describe("cleanup per phase (docs/design.md#cleanup-per-phase)", () => {
  it.effect("a key in both phases: a temporary DNS error in phase 2 keeps phase 2's rows", () =>
    withEnv({ "_smtp._tls.x.example.": { error: "servfail" } }, () =>
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          // phase 1: never looked up (send-report false), so its rows may go
          resultRow({ policyDomain: "x.example", recipientDomain: "x.example", day: DAY, sendReport: false }),
          // phase 2: the lookup fails temporarily all round long, so its row must stay
          resultRow({ policyDomain: "x.example", recipientDomain: "y.example", day: DAY, failure: 1 })
        ])
        const { rounds, fiber } = yield* startSchedule(config)
        const first = yield* nextRound(rounds)
        assert.deepStrictEqual(
          first.keys.map((k) => [k.phase, k.outcome]),
          [
            ["recipient-domain", "not-requested"],
            ["policy-domain", "kept-temporary"]
          ]
        )
        assert.deepStrictEqual(
          (yield* store.listResults()).map((r) => [r.policyDomain, r.recipientDomain]),
          [["x.example", "y.example"]]
        )
        yield* Fiber.interrupt(fiber)
      })
    )
  )
})

describe("bad records", () => {
  it.effect("a huge rua list is capped: the report goes to the first MAX_DESTINATIONS addresses only", () =>
    withEnv(
      {
        "_smtp._tls.many.example.": record(...Array.from({ length: 60 }, (_, i) => `mailto:r${i}@many.example`))
      },
      () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([
            resultRow({ policyDomain: "many.example", recipientDomain: "many.example", day: DAY, failure: 1 })
          ])
          const { rounds, fiber } = yield* startSchedule(config)
          const first = yield* nextRound(rounds)
          assert.deepStrictEqual(
            first.keys.map((k) => [k.outcome, k.queued]),
            [["sent", ReporterLive.MAX_DESTINATIONS]]
          )
          const sent = yield* deliverAndParse
          assert.deepStrictEqual(
            sent.map((s) => s.to),
            Array.from({ length: ReporterLive.MAX_DESTINATIONS }, (_, i) => `r${i}@many.example`)
          )
          yield* Fiber.interrupt(fiber)
        })
    )
  )
})

describe("failures inside a round", () => {
  it.effect("a defect while sending one key is logged and counted, keeps its rows, and the round goes on", () =>
    withEnv(
      {
        "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example"),
        "_smtp._tls.b.example.": record("mailto:tlsrpt@b.example"),
        "_smtp._tls.c.example.": record("mailto:tlsrpt@c.example")
      },
      () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(
            ["a", "b", "c"].map((d) =>
              resultRow({ policyDomain: `${d}.example`, recipientDomain: `${d}.example`, day: DAY, failure: 1 })
            )
          )
          const { rounds, fiber } = yield* startSchedule(config)
          const first = yield* nextRound(rounds)
          assert.deepStrictEqual(
            first.keys.map((k) => [k.policyDomain, k.outcome]),
            [
              ["a.example", "sent"],
              ["b.example", "kept-error"],
              ["c.example", "sent"]
            ]
          )
          assert.deepStrictEqual(
            (yield* deliverAndParse).map((s) => s.to),
            ["tlsrpt@a.example", "tlsrpt@c.example"]
          )
          assert.deepStrictEqual(
            (yield* store.listResults()).map((r) => r.policyDomain),
            ["b.example"]
          )
          yield* Fiber.interrupt(fiber)
        }),
      // a defect for b.example, alone or in a batch (which the round then composes mail by mail)
      (mail) => ({
        ...mail,
        compose: (input) =>
          input.policyDomain.ascii === "b.example" ? Effect.dieMessage("boom") : mail.compose(input),
        composeAll: (inputs) =>
          inputs.some((input) => input.policyDomain.ascii === "b.example")
            ? Effect.dieMessage("boom")
            : mail.composeAll(inputs)
      })
    )
  )
})

describe("interruption", () => {
  it.effect.prop(
    "a round interrupted at a random point and restarted: no report lost, none sent twice",
    [fc.integer({ min: 0, max: 40 })],
    ([stopAfterMinutes]) =>
      withEnv(
        Object.fromEntries(
          Array.from({ length: 8 }, (_, i) => [
            `_smtp._tls.d${i}.example.`,
            record(`mailto:tlsrpt@d${i}.example`)
          ]).concat([["_smtp._tls.mx.example.", record("mailto:tlsrpt@mx.example")]])
        ),
        () =>
          Effect.gen(function* () {
            const store = yield* ResultStore
            yield* store.addResults(
              Array.from({ length: 8 }, (_, i) => [
                resultRow({ policyDomain: `d${i}.example`, recipientDomain: `d${i}.example`, day: DAY, failure: 1 }),
                resultRow({ policyDomain: "mx.example", recipientDomain: `d${i}.example`, day: DAY, failure: 1 })
              ]).flat()
            )
            // 9 paced sends, 5 minutes apart: stop somewhere in the first 40 minutes, then restart.
            const first = yield* startSchedule(config)
            yield* TestClock.adjust(Duration.minutes(stopAfterMinutes))
            yield* Fiber.interrupt(first.fiber)
            const before = yield* deliverAndParse
            yield* TestClock.adjust(Duration.minutes(1))
            const second = yield* startSchedule(config)
            yield* nextRound(second.rounds)
            const after = yield* deliverAndParse
            const all = [...before, ...after].map((s) => `${s.to} ${s.report.reportId}`).sort()
            const expected = [
              ...Array.from({ length: 8 }, (_, i) => `tlsrpt@d${i}.example 20240109.d${i}.example@reports.example`),
              "tlsrpt@mx.example 20240109.mx.example@reports.example"
            ].sort()
            assert.deepStrictEqual(all, expected)
            yield* Fiber.interrupt(second.fiber)
            assert.deepStrictEqual(yield* store.listResults(), [])
          })
      ),
    { fastCheck: { numRuns: 12, seed: 8460 } }
  )
})
