/**
 * The collector on the real store: a SQLite FILE in a temp directory, closed and reopened.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { PolicyResult } from "@tlsrpt/core"
import { type ResultRow, ResultStore, Store } from "@tlsrpt/store"
import { Context, Effect, Layer } from "effect"
import { Collector, type CollectorConfig } from "../src/Collector.js"
import type * as SessionOutcome from "../src/SessionOutcome.js"
import { d, outcome, T0 } from "./Outcomes.js"

type Service = Context.Tag.Service<Collector>

const tempDb = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tlsrpt-collector-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => join(dir, "results.db")))

/** A collector on the file for the duration of `use`; closing it flushes, then closes the database. */
const withCollector = <A, E>(filename: string, config: CollectorConfig, use: (c: Service) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Layer.build(Collector.layer(config).pipe(Layer.provide(Store.layer({ filename })))).pipe(
      Effect.flatMap((ctx) => use(Context.get(ctx, Collector)))
    )
  )

/** Opens the file afresh and lists every row. */
const readAll = (filename: string) =>
  Effect.scoped(
    Layer.build(Store.layer({ filename })).pipe(Effect.flatMap((ctx) => Context.get(ctx, ResultStore).listResults()))
  )

interface Totals {
  success: number
  failure: number
  details: number
}

const totalsOf = (rows: ReadonlyArray<ResultRow>): Map<string, Totals> => {
  const out = new Map<string, Totals>()
  for (const row of rows) {
    const t = { success: 0, failure: 0, details: 0 }
    for (const r of row.results) {
      t.success += r.summary.totalSuccessfulSessionCount
      t.failure += r.summary.totalFailureSessionCount
      for (const fd of r.failureDetails) t.details += fd.failedSessionCount
    }
    out.set(`${row.policyDomain}|${row.day}|${row.recipientDomain}`, t)
  }
  return out
}

const sorted = (m: Map<string, Totals>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

const DAY2 = new Date(T0.getTime() + 86_400_000)
const DOMAINS = 250

/** Outcome j of fiber i: 250 recipient domains × 3 MX hosts × 2 days, 5 % failures. */
const generated = (i: number, j: number): SessionOutcome.SessionOutcome => {
  const n = (i * 37 + j) % DOMAINS
  const recipient = `r${n}.example`
  const mxHost = `mx${j % 3}.${recipient}`
  const failed = (i + j) % 20 === 0
  const result = failed ? ("failure" as const) : ("success" as const)
  return {
    timestamp: j % 2 === 0 ? T0 : DAY2,
    recipientDomain: d(recipient),
    mxHost: d(mxHost),
    sendingIp: "192.0.2.1",
    receivingIp: `198.51.100.${j % 3}`,
    mxGreeting: `${mxHost} ESMTP`,
    policies: [
      n % 3 === 0
        ? {
            type: "sts",
            policyLines: ["version: STSv1", "mode: enforce"],
            mxPatterns: [`*.${recipient}`],
            result,
            ...(failed ? { failureDetails: [{ resultType: "certificate-expired" as const }] } : {})
          }
        : {
            type: "no-policy-found",
            scope: "recipient-domain",
            result,
            ...(failed ? { failureDetails: [{ resultType: "certificate-expired" as const }] } : {})
          },
      n % 5 === 0
        ? { type: "tlsa", records: ["3 1 1 abcdef"], baseDomain: d(mxHost), result }
        : { type: "no-policy-found", scope: "mx-host", result }
    ]
  }
}

/** The same totals, computed from the generator's rules rather than through the collector. */
const expectedTotals = (fibers: number, perFiber: number): Map<string, Totals> => {
  const out = new Map<string, Totals>()
  const add = (key: string, failed: boolean, details: number) => {
    const t = out.get(key) ?? { success: 0, failure: 0, details: 0 }
    if (failed) t.failure++
    else t.success++
    t.details += details
    out.set(key, t)
  }
  for (let i = 0; i < fibers; i++)
    for (let j = 0; j < perFiber; j++) {
      const n = (i * 37 + j) % DOMAINS
      const day = j % 2 === 0 ? "2024-01-09" : "2024-01-10"
      const failed = (i + j) % 20 === 0
      add(`mx${j % 3}.r${n}.example|${day}|r${n}.example`, failed, 0)
      add(`r${n}.example|${day}|r${n}.example`, failed, failed ? 1 : 0)
    }
  return out
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("Collector on a SQLite file", () => {
  // The same at volume (1,000,000 outcomes into a SQLite file) is bench/ingest.ts.
  it.scopedLive("50 concurrent fibers × 200 outcomes, flushed many times, give exactly the summed counts", () =>
    Effect.gen(function* () {
      const filename = yield* tempDb
      const PER_FIBER = 200
      const stats = yield* withCollector(filename, { flushInterval: "100 millis", flushRows: 100 }, (collector) =>
        Effect.forEach(
          range(50),
          (i) => Effect.forEach(range(PER_FIBER), (j) => collector.record(generated(i, j)), { discard: true }),
          { concurrency: "unbounded", discard: true }
        ).pipe(Effect.zipRight(collector.stats))
      )
      assert.strictEqual(stats.recorded, 50 * PER_FIBER)
      assert.strictEqual(stats.refused, 0)
      assert.isAbove(stats.flushes, 1)
      const rows = yield* readAll(filename)
      assert.strictEqual(rows.length, DOMAINS * 4 * 2)
      assert.deepStrictEqual(sorted(totalsOf(rows)), sorted(expectedTotals(50, PER_FIBER)))
      const sessions = [...totalsOf(rows).values()].reduce((n, t) => n + t.success + t.failure, 0)
      assert.strictEqual(sessions, 2 * 50 * PER_FIBER, "two rows (recipient domain and MX host) a session")
    })
  )

  it.scopedLive("closing and reopening the file keeps everything; later sessions merge into it", () =>
    Effect.gen(function* () {
      const filename = yield* tempDb
      yield* withCollector(filename, { flushInterval: "1 hour" }, (collector) =>
        Effect.forEach(range(1000), (j) => collector.record(generated(0, j)), { discard: true })
      )
      const first = yield* readAll(filename)
      assert.deepStrictEqual(sorted(totalsOf(first)), sorted(expectedTotals(1, 1000)))
      // Reopening alone changes nothing, byte for byte.
      assert.deepStrictEqual(yield* readAll(filename), first)
      yield* withCollector(filename, { flushInterval: "1 hour" }, (collector) =>
        Effect.forEach(range(1000), (j) => collector.record(generated(0, j)), { discard: true })
      )
      const doubled = new Map(
        [...expectedTotals(1, 1000)].map(([k, t]) => [
          k,
          { success: t.success * 2, failure: t.failure * 2, details: t.details * 2 }
        ])
      )
      assert.deepStrictEqual(sorted(totalsOf(yield* readAll(filename))), sorted(doubled))
    })
  )
})

describe("merge on add (docs/design.md#row-merge) through the collector", () => {
  const rowOf = (rows: ReadonlyArray<ResultRow>, policyDomain: string, recipientDomain = policyDomain) =>
    rows.find((r) => r.policyDomain === policyDomain && r.recipientDomain === recipientDomain)

  it.scopedLive("a key's row merges later results: equal policies summed, others appended, details by key", () =>
    Effect.gen(function* () {
      const filename = yield* tempDb
      const withSts = (lines: ReadonlyArray<string>, result: "success" | "failure", reason?: string) =>
        outcome("example.com", {
          policies: [
            {
              type: "sts",
              policyLines: lines,
              mxPatterns: ["*.example.com"],
              result,
              ...(reason === undefined
                ? {}
                : { failureDetails: [{ resultType: "validation-failure" as const, reasonCode: reason }] })
            }
          ]
        })
      yield* withCollector(filename, { flushInterval: "1 hour" }, (collector) =>
        Effect.gen(function* () {
          yield* collector.record(withSts(["mode: enforce"], "failure", "dane-no-match"))
          yield* collector.flush
          yield* collector.record(withSts(["mode: enforce"], "success"))
          yield* collector.record(withSts(["mode: enforce"], "failure", "dane-no-match"))
          yield* collector.flush
          yield* collector.record(withSts(["mode: testing"], "success"))
          yield* collector.record(withSts(["mode: enforce"], "failure", "other"))
        })
      )
      const row = rowOf(yield* readAll(filename), "example.com")!
      assert.deepStrictEqual(
        row.results.map((r) => [
          r.policy.policyString,
          r.summary.totalSuccessfulSessionCount,
          r.summary.totalFailureSessionCount,
          r.failureDetails.map((fd) => [fd.failureReasonCode, fd.failedSessionCount])
        ]),
        [
          [
            ["mode: enforce"],
            1,
            3,
            [
              ["dane-no-match", 2],
              ["other", 1]
            ]
          ],
          [["mode: testing"], 1, 0, []]
        ]
      )
      assert.isTrue(PolicyResult.hasFailure(row.results))
    })
  )

  it.scopedLive("isHost: the last writer wins; a domain's own host and recipient results share its row", () =>
    Effect.gen(function* () {
      const filename = yield* tempDb
      // A domain without MX: the MX host is the domain itself (docs/design.md#row-merge).
      const direct = (policies: ReadonlyArray<SessionOutcome.SessionPolicy>) =>
        outcome("example.com", { mxHost: d("example.com"), policies })
      const rows1 = yield* withCollector(filename, { flushInterval: "1 hour" }, (collector) =>
        collector.record(
          direct([
            { type: "no-policy-found", scope: "mx-host", result: "success" },
            { type: "sts", result: "success" }
          ])
        )
      ).pipe(Effect.zipRight(readAll(filename)))
      const merged = rowOf(rows1, "example.com")!
      assert.strictEqual(rows1.length, 1)
      assert.isFalse(merged.isHost, "host row first, recipient row last")
      assert.deepStrictEqual(
        merged.results.map((r) => r.policy.policyType),
        ["no-policy-found", "sts"]
      )
      yield* withCollector(filename, { flushInterval: "1 hour" }, (collector) =>
        collector.record(
          direct([{ type: "tlsa", records: ["3 1 1 ab"], baseDomain: d("example.com"), result: "success" }])
        )
      )
      const rows2 = yield* readAll(filename)
      assert.isTrue(rowOf(rows2, "example.com")!.isHost, "a later host-only result makes it a host row")
      assert.strictEqual(rowOf(rows2, "example.com")!.id, merged.id, "same row")
    })
  )

  it.scopedLive("sendReport becomes true and never goes back", () =>
    Effect.gen(function* () {
      const filename = yield* tempDb
      const sendReport = (o: Partial<SessionOutcome.SessionOutcome>) =>
        withCollector(filename, { flushInterval: "1 hour" }, (collector) =>
          collector.record(outcome("example.com", o))
        ).pipe(
          Effect.zipRight(readAll(filename)),
          Effect.map((rows) => rowOf(rows, "example.com")!.sendReport)
        )
      assert.isFalse(yield* sendReport({ isTlsReport: true }), "a TLS report's delivery alone")
      assert.isFalse(yield* sendReport({ isDmarcReport: true }), "plus a DMARC report without failure")
      assert.isTrue(yield* sendReport({}), "a normal delivery")
      assert.isTrue(yield* sendReport({ isTlsReport: true }), "sticky")
      const rows = yield* readAll(filename)
      assert.strictEqual(rowOf(rows, "example.com")!.results[0]!.summary.totalSuccessfulSessionCount, 4)
    })
  )
})
