import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Fiber, Layer, Logger, Metric, Option, Queue, Scope, TestClock } from "effect"
import { Collector, type CollectorConfig, metrics } from "../src/Collector.js"
import { type FakeStore, makeFakeStore } from "./FakeStore.js"
import { d, json, outcome } from "./Outcomes.js"

const start = (fake: FakeStore, config?: CollectorConfig) =>
  Layer.build(Collector.layer(config).pipe(Layer.provide(fake.layer))).pipe(Effect.map(Context.get(Collector)))

/** Lets forked fibers run until they block. */
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

const sts = (fake: FakeStore, domain: string) => {
  const row = fake.rows.get(`${domain}|2024-01-09|${domain}`)
  return row === undefined ? undefined : row.results.map((r) => r.summary.totalSuccessfulSessionCount)
}

describe("Collector", () => {
  it.scoped("flushes every flushInterval (TestClock)", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 second" })
      const recordedBefore = (yield* Metric.value(metrics.recorded)).count
      const flushesBefore = (yield* Metric.value(metrics.flushSeconds)).count
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(yield* Queue.size(fake.batches), 0, "nothing before the interval")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Queue.take(fake.batches), 2)
      assert.deepStrictEqual(sts(fake, "a.example"), [1])
      yield* collector.record(outcome("a.example"))
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Queue.take(fake.batches), 2)
      assert.deepStrictEqual(sts(fake, "a.example"), [3])
      const stats = yield* collector.stats
      assert.deepStrictEqual(
        [stats.recorded, stats.rows, stats.flushed, stats.flushes, stats.pendingKeys],
        [3, 6, 4, 2, 0]
      )
      assert.strictEqual((yield* Metric.value(metrics.recorded)).count - recordedBefore, 3)
      assert.strictEqual((yield* Metric.value(metrics.flushSeconds)).count - flushesBefore, 2)
    })
  )

  it.scoped("an idle collector sets no timer; the next row is flushed within the interval", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 second" })
      yield* settle
      assert.strictEqual((yield* TestClock.sleeps()).length, 0, "nothing to flush: no wake-up pending")
      yield* collector.record(outcome("a.example"))
      yield* settle
      assert.strictEqual((yield* TestClock.sleeps()).length, 1, "a row waits: the interval runs")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Queue.take(fake.batches), 2)
      yield* settle
      assert.strictEqual((yield* TestClock.sleeps()).length, 0, "flushed and idle again")
      yield* TestClock.adjust("1 day")
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Queue.take(fake.batches), 2)
      assert.deepStrictEqual(sts(fake, "a.example"), [2])
    })
  )

  it.scoped("flushes as soon as flushRows distinct keys are buffered", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour", flushRows: 4 })
      yield* collector.record(outcome("a.example"))
      yield* collector.record(outcome("a.example"))
      yield* settle
      assert.strictEqual(yield* Queue.size(fake.batches), 0, "2 keys: below flushRows")
      yield* collector.record(outcome("b.example"))
      assert.strictEqual(yield* Queue.take(fake.batches), 4)
      assert.deepStrictEqual(sts(fake, "a.example"), [2])
      assert.deepStrictEqual(sts(fake, "b.example"), [1])
    })
  )

  it.scoped(
    "by default a stream over 12,000 recipient domains aggregates over the interval (one row per key, not per session)",
    () =>
      Effect.gen(function* () {
        const fake = yield* makeFakeStore
        const collector = yield* start(fake, { flushInterval: "1 hour" })
        const domains = Array.from({ length: 12_000 }, (_, i) => outcome(`r${i}.example`))
        // Twice over every domain: a key-count trigger at or below a day's domains would flush mid-stream.
        yield* collector.recordAll(domains)
        yield* settle
        yield* collector.recordAll(domains)
        yield* settle
        assert.strictEqual(yield* Queue.size(fake.attempts), 0, "no early flush below flushRows")
        yield* TestClock.adjust("1 hour")
        // Two keys an outcome (its recipient domain's and its MX host's, docs/design.md#rows-of-an-outcome).
        assert.strictEqual(yield* Queue.take(fake.batches), 24_000)
        assert.deepStrictEqual(sts(fake, "r0.example"), [2])
        assert.deepStrictEqual(sts(fake, "r11999.example"), [2])
        assert.deepStrictEqual(
          yield* collector.stats.pipe(Effect.map((s) => [s.rows, s.flushed, s.flushes])),
          [48_000, 24_000, 1]
        )
      })
  )

  it.scoped("checks the interval itself when timers cannot fire (a caller recording in a tight loop)", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      // A clock whose timers never fire, like an event loop that gets no turn.
      let now = 0
      const stalled: Clock.Clock = {
        [Clock.ClockTypeId]: Clock.ClockTypeId,
        unsafeCurrentTimeMillis: () => now,
        unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
        currentTimeMillis: Effect.sync(() => now),
        currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
        sleep: () => Effect.never
      }
      const collector = yield* start(fake, { flushInterval: "1 second" }).pipe(Effect.withClock(stalled))
      const many = (n: number) =>
        Effect.forEach(Array.from({ length: n }), () => collector.record(outcome("a.example")), { discard: true })
      yield* many(1024)
      yield* settle
      assert.strictEqual(yield* Queue.size(fake.batches), 0, "the interval has not passed")
      now = 1000
      yield* many(1024)
      assert.strictEqual(yield* Queue.take(fake.batches), 2)
      assert.deepStrictEqual(sts(fake, "a.example"), [2048])
    })
  )

  it.scoped("flushes what is left when its scope closes", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const scope = yield* Scope.make()
      const collector = yield* start(fake, { flushInterval: "1 hour" }).pipe(Scope.extend(scope))
      for (const domain of ["a.example", "b.example", "a.example"]) yield* collector.record(outcome(domain))
      assert.strictEqual(fake.calls, 0)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(sts(fake, "a.example"), [2])
      assert.deepStrictEqual(sts(fake, "b.example"), [1])
      assert.strictEqual(fake.rows.size, 4)
      // Using it afterwards is a defect, not a silent loss.
      const after = yield* Effect.exit(collector.record(outcome("c.example")))
      assert.isTrue(Exit.isFailure(after) && !Exit.isInterrupted(after))
    })
  )

  it.scoped("back-pressure: record waits while the store is blocked and the buffer full, then completes", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      yield* fake.gate.close
      const collector = yield* start(fake, { flushInterval: "1 hour", flushRows: 2, maxPendingKeys: 4 })
      yield* collector.record(outcome("a.example"))
      // The flush fiber took the 2 keys and is stuck in addResults.
      assert.strictEqual(yield* Queue.take(fake.attempts), 2)
      yield* collector.record(outcome("b.example"))
      yield* collector.record(outcome("c.example"))
      const waiting = yield* Effect.fork(collector.record(outcome("d.example")))
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)), "record waits instead of dropping")
      assert.strictEqual((yield* collector.stats).pendingKeys, 6)
      yield* fake.gate.open
      yield* Fiber.join(waiting)
      yield* collector.flush
      assert.strictEqual(fake.rows.size, 8)
      for (const domain of ["a.example", "b.example", "c.example", "d.example"])
        assert.deepStrictEqual(sts(fake, domain), [1], domain)
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.recorded, stats.flushed, stats.pendingKeys], [4, 8, 0])
    })
  )

  it.scoped("a failed flush keeps its batch and retries it before newer results", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      fake.failNext = 2
      const collector = yield* start(fake, { flushInterval: "1 second" })
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("1 second")
      yield* Queue.take(fake.attempts)
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("2 seconds") // backoff after 1 failure: 2 × interval
      yield* Queue.take(fake.attempts)
      assert.strictEqual(fake.rows.size, 0)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Queue.take(fake.batches), 2, "the old batch first")
      assert.strictEqual(yield* Queue.take(fake.batches), 2, "then the buffer")
      assert.deepStrictEqual(sts(fake, "a.example"), [2])
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.flushFailures, stats.flushes, stats.pendingKeys], [2, 2, 0])
    })
  )

  it.scoped("a defect in a flush is logged, the flush fiber restarted (Supervise), and the batch kept", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      fake.dieNext = 1
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => logs.push(`${logLevel.label} ${String(message)}`))
      const collector = yield* start(fake, { flushInterval: "1 second" }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("1 second")
      yield* Queue.take(fake.attempts)
      yield* settle
      assert.deepStrictEqual(logs, ["ERROR collector-flush crashed, restarting"])
      // Restarted after the first backoff (1 s), then flushes after its interval (1 s).
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual(yield* Queue.size(fake.batches), 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Queue.take(fake.batches), 2)
      assert.deepStrictEqual(sts(fake, "a.example"), [1])
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.flushFailures, stats.flushes, stats.pendingKeys], [0, 1, 0])
    })
  )

  it.scoped("a batch that failed before shutdown is written by the final flush", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      fake.failNext = 1
      const scope = yield* Scope.make()
      const collector = yield* start(fake, { flushInterval: "1 second" }).pipe(Scope.extend(scope))
      yield* collector.record(outcome("a.example"))
      yield* TestClock.adjust("1 second")
      yield* Queue.take(fake.attempts)
      yield* collector.record(outcome("b.example"))
      assert.strictEqual((yield* collector.stats).pendingKeys, 4)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(sts(fake, "a.example"), [1])
      assert.deepStrictEqual(sts(fake, "b.example"), [1])
      assert.strictEqual((yield* collector.stats).pendingKeys, 0)
    })
  )

  it.scoped("flush reports a store failure and keeps the data for the next flush", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour" })
      yield* collector.record(outcome("a.example"))
      fake.failNext = 1
      const error = yield* Effect.flip(collector.flush)
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual((yield* collector.stats).pendingKeys, 2)
      yield* collector.flush
      assert.deepStrictEqual(sts(fake, "a.example"), [1])
      assert.strictEqual(fake.rows.size, 2)
    })
  )

  it.scoped("refuses invalid outcomes with a typed error, counts them and stores nothing", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour" })
      const before = (yield* Metric.value(metrics.refused)).count
      const invalid = [
        json("example.com", { mxHost: "mx1.example.com\r\nBcc: x@example.net" }),
        json("ex ample"),
        json("example.com", {
          policies: [
            {
              type: "sts",
              result: "failure",
              failureDetails: [{ resultType: "certificate-expired", failedSessionCount: -2 }]
            }
          ]
        }),
        json("example.com", { policies: [{ type: "dane", result: "success" }] })
      ]
      const fields: Array<string> = []
      for (const input of invalid) {
        const e = yield* Effect.flip(collector.recordUnknown(input))
        assert.strictEqual(e._tag, "InvalidOutcome")
        fields.push(e.field)
      }
      assert.deepStrictEqual(fields, [
        "mxHost",
        "recipientDomain",
        "policies[0].failureDetails[0].failedSessionCount",
        "policies[0].type"
      ])
      const typed = { ...outcome("example.com"), mxGreeting: "evil\r\n" }
      assert.strictEqual((yield* Effect.flip(collector.record(typed))).field, "mxGreeting")
      yield* collector.flush
      assert.strictEqual(fake.calls, 0)
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.refused, stats.recorded, stats.pendingKeys], [5, 0, 0])
      assert.strictEqual((yield* Metric.value(metrics.refused)).count - before, 5)
      // A valid one afterwards goes through.
      yield* collector.recordUnknown(json("example.com"))
      yield* collector.flush
      assert.strictEqual(fake.rows.size, 2)
    })
  )

  it.scoped("recordRows is all or nothing", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour" })
      const row = {
        policyDomain: d("example.com"),
        day: "2024-01-09" as never,
        recipientDomain: d("example.com"),
        isHost: false,
        sendReport: true,
        results: [
          {
            policy: { policyType: "sts" as const, policyString: [], policyDomain: "example.com", mxHost: [] },
            summary: { totalSuccessfulSessionCount: 5, totalFailureSessionCount: 1 },
            failureDetails: []
          }
        ]
      }
      const negative = {
        ...row,
        results: [{ ...row.results[0]!, summary: { totalSuccessfulSessionCount: -1, totalFailureSessionCount: 1 } }]
      }
      const e = yield* Effect.flip(collector.recordRows([row, negative]))
      assert.strictEqual(e.field, "rows[1].results[0].summary.totalSuccessfulSessionCount")
      yield* collector.flush
      assert.strictEqual(fake.calls, 0)
      yield* collector.recordRows([row, row])
      yield* collector.flush
      assert.deepStrictEqual(sts(fake, "example.com"), [10])
    })
  )

  it.scoped("recordAll stores what record does, one outcome at a time", () =>
    Effect.gen(function* () {
      const outcomes = [
        outcome("a.example"),
        outcome("b.example", { isDmarcReport: true }),
        outcome("a.example", {
          policies: [
            { type: "sts", result: "failure", failureDetails: [{ resultType: "certificate-expired" }] },
            { type: "no-policy-found", scope: "mx-host", result: "success" }
          ]
        }),
        // An IP literal: accepted, no rows (docs/design.md#rows-of-an-outcome).
        outcome("a.example", { recipientDomain: "[192.0.2.7]" as never }),
        outcome("b.example")
      ]
      const one = yield* makeFakeStore
      const byOne = yield* start(one, { flushInterval: "1 hour" })
      for (const o of outcomes) yield* byOne.record(o)
      yield* byOne.flush
      const all = yield* makeFakeStore
      const byAll = yield* start(all, { flushInterval: "1 hour" })
      yield* byAll.recordAll(outcomes)
      yield* byAll.flush
      assert.strictEqual(all.rows.size, 4)
      assert.deepStrictEqual([...all.rows.entries()], [...one.rows.entries()])
      const [a, b] = [yield* byOne.stats, yield* byAll.stats]
      assert.deepStrictEqual([b.recorded, b.skipped, b.rows], [a.recorded, a.skipped, a.rows])
      assert.deepStrictEqual([b.recorded, b.skipped, b.rows], [5, 1, 8])
    })
  )

  it.scoped("recordAll is all or nothing: the first invalid outcome refuses the batch, named by its index", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour" })
      const bad = { ...outcome("b.example"), mxGreeting: "evil\r\n" }
      const e = yield* Effect.flip(collector.recordAll([outcome("a.example"), bad, outcome("c.example")]))
      assert.strictEqual(e.field, "[1].mxGreeting")
      const notObject = yield* Effect.flip(collector.recordAll([outcome("a.example"), null as never]))
      assert.strictEqual(notObject.field, "[1]")
      yield* collector.flush
      assert.strictEqual(fake.calls, 0)
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.refused, stats.recorded, stats.pendingKeys], [2, 0, 0])
      yield* collector.recordAll([])
      assert.strictEqual((yield* collector.stats).recorded, 0)
    })
  )

  it.scoped("back-pressure: recordAll waits while the store is blocked and the buffer full, then records all", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      yield* fake.gate.close
      const collector = yield* start(fake, { flushInterval: "1 hour", flushRows: 2, maxPendingKeys: 4 })
      yield* collector.recordAll([outcome("a.example")])
      assert.strictEqual(yield* Queue.take(fake.attempts), 2)
      yield* collector.recordAll([outcome("b.example"), outcome("c.example")])
      const waiting = yield* Effect.fork(collector.recordAll([outcome("d.example"), outcome("e.example")]))
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)), "recordAll waits instead of dropping")
      assert.strictEqual((yield* collector.stats).recorded, 3, "nothing of the waiting batch is recorded yet")
      yield* fake.gate.open
      yield* Fiber.join(waiting)
      yield* collector.flush
      for (const domain of ["a.example", "b.example", "c.example", "d.example", "e.example"])
        assert.deepStrictEqual(sts(fake, domain), [1], domain)
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.recorded, stats.flushed, stats.pendingKeys], [5, 10, 0])
    })
  )

  it.scoped("collect = false records nothing", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { collect: false, flushInterval: "1 second" })
      yield* collector.record(outcome("a.example"))
      yield* collector.recordUnknown(json("b.example"))
      yield* collector.recordAll([outcome("c.example"), outcome("d.example")])
      yield* TestClock.adjust("5 seconds")
      yield* collector.flush
      assert.strictEqual(fake.calls, 0)
      // Input is still checked.
      yield* Effect.flip(collector.recordUnknown(json("ex ample")))
      const e = yield* Effect.flip(
        collector.recordAll([outcome("e.example"), { ...outcome("f.example"), mxGreeting: "\n" }])
      )
      assert.strictEqual(e.field, "[1].mxGreeting")
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.recorded, stats.skipped, stats.refused, stats.rows], [4, 4, 2, 0])
    })
  )

  it.effect("layerNoop records nothing and needs no store", () =>
    Effect.gen(function* () {
      const collector = yield* Collector
      yield* collector.record(outcome("a.example"))
      yield* collector.flush
      const stats = yield* collector.stats
      assert.deepStrictEqual([stats.skipped, stats.rows, stats.flushed], [1, 0, 0])
    }).pipe(Effect.provide(Collector.layerNoop))
  )

  it.scoped("skips IP-literal recipients (docs/design.md#rows-of-an-outcome)", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour" })
      yield* collector.recordUnknown(json("[192.0.2.1]", { mxHost: "mx.example.net" }))
      yield* collector.flush
      assert.strictEqual(fake.calls, 0)
      assert.deepStrictEqual((yield* collector.stats).skipped, 1)
    })
  )

  it.scoped("counts are exact under concurrent recorders", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeStore
      const collector = yield* start(fake, { flushInterval: "1 hour", flushRows: 3, maxPendingKeys: 5 })
      const domains = ["a.example", "b.example", "c.example", "d.example"]
      yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) =>
          Effect.forEach(
            Array.from({ length: 100 }, (_, j) => domains[(i + j) % 4]!),
            (domain) => collector.record(outcome(domain)),
            { discard: true }
          ),
        { concurrency: "unbounded", discard: true }
      )
      yield* collector.flush
      for (const domain of domains) assert.deepStrictEqual(sts(fake, domain), [500], domain)
      const stats = yield* collector.stats
      assert.strictEqual(stats.recorded, 2000)
      assert.isAbove(stats.flushes, 10)
    })
  )
})
