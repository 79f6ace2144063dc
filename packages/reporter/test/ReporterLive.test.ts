/**
 * The round's rules (docs/design.md#the-daily-round) on the real parts: the in-memory SQLite store, the
 * DNS test layer, the real composer and the capturing transport (`@tlsrpt/testkit/simulation`). Most
 * rounds here run unpaced, so they go through the batched path (one read and one commit per batch).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import type { TestAnswer } from "@tlsrpt/dns"
import type { ReportMailService } from "@tlsrpt/mail"
import { Outbox, ResultStore, SuppressionList } from "@tlsrpt/store"
import { deliverAndParse, makeEnv, nextRound, record, resultRow, startSchedule } from "@tlsrpt/testkit/simulation"
import { Effect, Fiber, HashMap, Logger, LogLevel, Option, Ref, TestClock } from "effect"
import { defaultConfig, type KeyReport, type ReporterConfig, ReporterLive } from "../src/index.js"

const START = Date.parse("2024-01-10T00:05:00Z")
const DAY = "2024-01-09" as Day.Day
const config: ReporterConfig = { ...defaultConfig, https: false }

const withEnv = <A, E, R>(
  dns: Record<string, TestAnswer>,
  body: Effect.Effect<A, E, R>,
  wrapMail?: (mail: ReportMailService) => ReportMailService
) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(START)
    const ref = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(new Map(Object.entries(dns)))
    const env = yield* makeEnv({ submitter: "reports.example", dns: ref, ...(wrapMail ? { wrapMail } : {}) })
    return yield* body.pipe(Effect.provide(env))
  })

const runUnpaced = (c: ReporterConfig = config) =>
  Effect.flatMap(ReporterLive.make(c), (r) => r.runRound(DAY, { pace: false }))

const outcomes = (keys: ReadonlyArray<KeyReport>) => keys.map((k) => `${k.phase} ${k.policyDomain} ${k.outcome}`)
const remaining = Effect.flatMap(ResultStore, (s) => s.listResults()).pipe(
  Effect.map((rows) => rows.map((r) => `${r.policyDomain}/${r.recipientDomain}`))
)

describe("ReporterLive: log lines", () => {
  const queuedLines = (level: LogLevel.LogLevel) => {
    const logged: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      const text = (Array.isArray(message) ? message : [message]).join(" ")
      const at = (k: string) => Option.getOrElse(HashMap.get(annotations, k), () => "?")
      if (text.includes("queued for")) logged.push(`${at("phase")} ${at("policyDomain")} ${at("day")}: ${text}`)
    })
    return withEnv(
      { "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example") },
      Effect.gen(function* () {
        yield* (yield* ResultStore).addResults([
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 1 })
        ])
        yield* runUnpaced()
        return logged
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)), Logger.withMinimumLogLevel(level))
    )
  }

  // The batch asks once whether Info is logged (the round's main thread): logged with the key's
  // annotations when it is, not at all when it is not.
  it.effect("a queued report is logged at Info with its key, and not below the minimum level", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* queuedLines(LogLevel.Info), [
        "recipient-domain a.example 2024-01-09: report 20240109.a.example@reports.example queued for 1 destination(s)"
      ])
      assert.deepStrictEqual(yield* queuedLines(LogLevel.Warning), [])
    })
  )
})

describe("ReporterLive: phases (docs/design.md#key-gathering, docs/design.md#two-phases)", () => {
  it.effect("the split is on domain equality; a domain in both phases gets a +mx report-id", () =>
    withEnv(
      {
        "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example"),
        "_smtp._tls.b.example.": record("mailto:tlsrpt@b.example"),
        "_smtp._tls.mx.example.": record("mailto:tlsrpt@mx.example")
      },
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 1 }),
          // a.example is also the MX host of b.example: a phase-2 key of a.example
          resultRow({ policyDomain: "a.example", recipientDomain: "b.example", day: DAY, failure: 2 }),
          resultRow({ policyDomain: "b.example", recipientDomain: "b.example", day: DAY, failure: 1 }),
          resultRow({ policyDomain: "mx.example", recipientDomain: "b.example", day: DAY, failure: 1 })
        ])
        const summary = yield* runUnpaced()
        assert.deepStrictEqual(outcomes(summary.keys), [
          "recipient-domain a.example sent",
          "recipient-domain b.example sent",
          "policy-domain a.example sent",
          "policy-domain mx.example sent"
        ])
        const sent = yield* deliverAndParse
        assert.deepStrictEqual(
          sent.map((s) => [s.to, s.report.reportId, s.report.policies.map((p) => p.policy.policyDomain)]),
          [
            // phase 1 reads by recipient domain: b.example's report holds its MX hosts' rows too
            ["tlsrpt@a.example", "20240109.a.example@reports.example", ["a.example"]],
            ["tlsrpt@b.example", "20240109.b.example@reports.example", ["a.example", "b.example", "mx.example"]],
            // phase 2 rewrites the policy domain to the recipient domain (docs/design.md#mx-host-rewrite)
            ["tlsrpt@a.example", "20240109.a.example+mx@reports.example", ["b.example"]],
            ["tlsrpt@mx.example", "20240109.mx.example@reports.example", ["b.example"]]
          ]
        )
        assert.deepStrictEqual(yield* remaining, [])
      })
    )
  )

  it.effect("unpaced, more keys than a batch: one report each, committed in key order, nothing twice", () =>
    withEnv(
      Object.fromEntries(
        Array.from({ length: 150 }, (_, i) => [`_smtp._tls.d${i}.example.`, record(`mailto:tlsrpt@d${i}.example`)])
      ),
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults(
          Array.from({ length: 150 }, (_, i) =>
            resultRow({ policyDomain: `d${i}.example`, recipientDomain: `d${i}.example`, day: DAY, failure: 1 })
          )
        )
        const summary = yield* runUnpaced()
        assert.strictEqual(summary.reports, 150)
        const planned = summary.keys.map((k) => k.policyDomain)
        assert.deepStrictEqual(planned, [...planned].sort())
        assert.deepStrictEqual(
          (yield* (yield* Outbox).list()).map((m) => m.destination),
          planned.map((d) => `tlsrpt@${d}`)
        )
        const again = yield* runUnpaced()
        assert.deepStrictEqual(again.keys, [])
        assert.strictEqual(yield* (yield* Outbox).count(), 150)
      })
    )
  )
})

describe("ReporterLive: failure rule (docs/design.md#failure-rule)", () => {
  it.effect("no failure: nothing sent, rows deleted; forAllSuccess sends the success-only report", () =>
    withEnv(
      { "_smtp._tls.ok.example.": record("mailto:tlsrpt@ok.example") },
      Effect.gen(function* () {
        const store = yield* ResultStore
        const row = resultRow({ policyDomain: "ok.example", recipientDomain: "ok.example", day: DAY, success: 5 })
        yield* store.addResults([row])
        const quiet = yield* runUnpaced()
        assert.deepStrictEqual(outcomes(quiet.keys), ["recipient-domain ok.example no-failure"])
        assert.deepStrictEqual(yield* deliverAndParse, [])
        assert.deepStrictEqual(yield* remaining, [])

        yield* store.addResults([row])
        const all = yield* runUnpaced({ ...config, forAllSuccess: true })
        assert.deepStrictEqual(outcomes(all.keys), ["recipient-domain ok.example sent"])
        const [sent] = yield* deliverAndParse
        assert.deepStrictEqual(
          sent!.report.policies.map((p) => [p.summary.totalSuccessfulSessionCount, p.summary.totalFailureSessionCount]),
          [[5, 0]]
        )
      })
    )
  )

  it.effect("failure details count even with zero counters", () =>
    withEnv(
      { "_smtp._tls.d.example.": record("mailto:tlsrpt@d.example") },
      Effect.gen(function* () {
        const store = yield* ResultStore
        const base = resultRow({ policyDomain: "d.example", recipientDomain: "d.example", day: DAY, failure: 1 })
        const [result] = base.results
        yield* store.addResults([
          { ...base, results: [{ ...result!, summary: { ...result!.summary, totalFailureSessionCount: 0 } }] }
        ])
        assert.deepStrictEqual(outcomes((yield* runUnpaced()).keys), ["recipient-domain d.example sent"])
      })
    )
  )
})

describe("ReporterLive: already-sent guard (docs/design.md#already-sent-guard)", () => {
  it.effect("a committed report is not sent again, in either phase, and its rows are cleaned up", () =>
    withEnv(
      {
        "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example"),
        "_smtp._tls.mx.example.": record("mailto:tlsrpt@mx.example")
      },
      Effect.gen(function* () {
        const store = yield* ResultStore
        yield* store.addResults([
          resultRow({ policyDomain: "a.example", recipientDomain: "a.example", day: DAY, failure: 1 }),
          resultRow({ policyDomain: "mx.example", recipientDomain: "a.example", day: DAY, failure: 1 })
        ])
        // a round that committed both reports and crashed before deleting the rows
        yield* store.markSentAndEnqueueAll([
          {
            mark: {
              phase: "recipient-domain",
              recipientDomain: "a.example",
              day: DAY,
              reportingAddresses: ["mailto:tlsrpt@a.example"]
            },
            messages: []
          },
          // a pure MX host: guarded because every fetched row is marked (docs/design.md#phase-2-sent-guard)
          { mark: { phase: "policy-domain", policyDomain: "mx.example", day: DAY }, messages: [] }
        ])
        const summary = yield* runUnpaced()
        assert.deepStrictEqual(outcomes(summary.keys), [
          "recipient-domain a.example already-sent",
          "policy-domain mx.example already-sent"
        ])
        assert.deepStrictEqual(yield* (yield* Outbox).list(), [])
        assert.deepStrictEqual(yield* remaining, [])
      })
    )
  )
})

describe("ReporterLive: cleanup matrix (docs/design.md#cleanup-matrix)", () => {
  const dns: Record<string, TestAnswer> = {
    "_smtp._tls.sent.example.": record("mailto:tlsrpt@sent.example"),
    "_smtp._tls.syntax.example.": ["v=TLSRPTv1; rua=mailto:a@syntax.example; junk"],
    "_smtp._tls.multiple.example.": [...record("mailto:a@multiple.example"), ...record("mailto:b@multiple.example")],
    "_smtp._tls.temporary.example.": { error: "servfail" },
    "_smtp._tls.nodest.example.": record("ftp://nodest.example/"),
    "_smtp._tls.suppressed.example.": record("mailto:tlsrpt@suppressed.example"),
    "_smtp._tls.noreq.example.": record("mailto:tlsrpt@noreq.example"),
    "_smtp._tls.boom.example.": record("mailto:tlsrpt@boom.example")
  }
  const domains = [
    "boom",
    "multiple",
    "nodest",
    "norecord",
    "noreq",
    "sent",
    "suppressed",
    "syntax",
    "temporary"
  ] as const

  /** One key per outcome; the suppression entry spelled as given (the store normalises it). */
  const seedMatrix = (suppressed: string) =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      yield* (yield* SuppressionList).add({ address: suppressed, until: new Date(START + 86_400_000) })
      yield* store.addResults(
        domains.map((d) =>
          resultRow({
            policyDomain: `${d}.example`,
            recipientDomain: `${d}.example`,
            day: DAY,
            failure: 1,
            sendReport: d !== "noreq"
          })
        )
      )
    })
  /**
   * The real composer, dying for boom.example: a defect in one key. A batch holding it dies whole, so
   * the round composes that batch's mails one by one and keeps only boom.example.
   */
  const boomMail = (mail: ReportMailService): ReportMailService => ({
    ...mail,
    compose: (input) => (input.policyDomain.ascii === "boom.example" ? Effect.dieMessage("boom") : mail.compose(input)),
    composeAll: (inputs) =>
      inputs.some((input) => input.policyDomain.ascii === "boom.example")
        ? Effect.dieMessage("boom")
        : mail.composeAll(inputs)
  })

  it.effect("each outcome deletes or keeps its rows as the matrix says, batched in one round", () =>
    withEnv(
      dns,
      Effect.gen(function* () {
        yield* seedMatrix("TLSRPT@suppressed.example")
        const summary = yield* runUnpaced()
        assert.deepStrictEqual(outcomes(summary.keys), [
          "recipient-domain boom.example kept-error",
          "recipient-domain multiple.example discarded-multiple",
          "recipient-domain nodest.example no-destinations",
          "recipient-domain norecord.example no-record",
          "recipient-domain noreq.example not-requested",
          "recipient-domain sent.example sent",
          "recipient-domain suppressed.example all-suppressed",
          "recipient-domain syntax.example discarded-syntax",
          "recipient-domain temporary.example kept-temporary"
        ])
        assert.deepStrictEqual(yield* remaining, ["boom.example/boom.example", "temporary.example/temporary.example"])
        assert.deepStrictEqual(
          (yield* deliverAndParse).map((s) => s.to),
          ["tlsrpt@sent.example"]
        )
        // all-suppressed is still marked, so a restarted round would not send it
        assert.deepStrictEqual(
          summary.kept.map((k) => k.policyDomain),
          ["boom.example", "temporary.example"]
        )
      }),
      boomMail
    )
  )

  it.effect("a failed batch commit keeps exactly that batch's rows, marks nothing, and the next round sends", () =>
    withEnv(
      {
        "_smtp._tls.a.example.": record("mailto:tlsrpt@a.example"),
        "_smtp._tls.b.example.": record("mailto:tlsrpt@b.example"),
        "_smtp._tls.c.example.": ["v=TLSRPTv1; rua=mailto:a@c.example; junk"]
      },
      Effect.gen(function* () {
        const store = yield* ResultStore
        const sql = yield* SqlClient.SqlClient
        yield* store.addResults(
          ["a", "b", "c"].map((d) =>
            resultRow({ policyDomain: `${d}.example`, recipientDomain: `${d}.example`, day: DAY, failure: 1 })
          )
        )
        yield* sql`CREATE TRIGGER outbox_refuse BEFORE INSERT ON outbox WHEN NEW.destination = 'tlsrpt@b.example'
          BEGIN SELECT RAISE(ABORT, 'refused by test'); END`
        const first = yield* runUnpaced()
        assert.deepStrictEqual(outcomes(first.keys), [
          "recipient-domain a.example kept-error",
          "recipient-domain b.example kept-error",
          "recipient-domain c.example discarded-syntax"
        ])
        assert.deepStrictEqual(yield* (yield* Outbox).list(), [])
        assert.deepStrictEqual(yield* remaining, ["a.example/a.example", "b.example/b.example"])
        assert.isTrue((yield* store.listResults()).every((r) => !r.sentToRecipientDomain))

        yield* sql`DROP TRIGGER outbox_refuse`
        const second = yield* runUnpaced()
        assert.deepStrictEqual(outcomes(second.keys), [
          "recipient-domain a.example sent",
          "recipient-domain b.example sent"
        ])
        assert.deepStrictEqual(yield* remaining, [])
      })
    )
  )

  it.effect(
    "only a temporary DNS error is logged as one, with its code, once per retry (none for a domain without a record)",
    () => {
      const logged: Array<string> = []
      const capture = Logger.make(({ annotations, message }) => {
        const text = (Array.isArray(message) ? message : [message]).join(" ")
        const domain = Option.getOrElse(HashMap.get(annotations, "policyDomain"), () => "?")
        if (text.includes("retrying")) logged.push(`${domain}: ${text}`)
      })
      return withEnv(
        dns,
        Effect.gen(function* () {
          yield* seedMatrix("tlsrpt@suppressed.example")
          const { rounds, fiber } = yield* startSchedule(config)
          yield* nextRound(rounds)
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual(logged, [
            "temporary.example: temporary DNS error (ESERVFAIL), retrying the TLSRPT lookup in 5m",
            "temporary.example: temporary DNS error (ESERVFAIL), retrying the TLSRPT lookup in 30m",
            "temporary.example: temporary DNS error (ESERVFAIL), retrying the TLSRPT lookup in 2h"
          ])
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      )
    }
  )

  it.effect("paced (one key per commit), the same outcomes as unpaced", () =>
    withEnv(
      dns,
      Effect.gen(function* () {
        yield* seedMatrix("tlsrpt@suppressed.example")
        const { rounds, fiber } = yield* startSchedule(config)
        const summary = yield* nextRound(rounds)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(
          outcomes(summary.keys).map((o) => o.split(" ").slice(1).join(" ")),
          [
            "boom.example kept-error",
            "multiple.example discarded-multiple",
            "nodest.example no-destinations",
            "norecord.example no-record",
            "noreq.example not-requested",
            "sent.example sent",
            "suppressed.example all-suppressed",
            "syntax.example discarded-syntax",
            "temporary.example kept-temporary"
          ]
        )
        assert.deepStrictEqual(yield* remaining, ["boom.example/boom.example", "temporary.example/temporary.example"])
      }),
      boomMail
    )
  )
})
