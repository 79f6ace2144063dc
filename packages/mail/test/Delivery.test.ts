import { assert, describe, it } from "@effect/vitest"
import { Outbox, type OutboxMessage, Store } from "@tlsrpt/store"
import { HttpSink, SmtpSink } from "@tlsrpt/testkit"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  Chunk,
  Clock,
  Deferred,
  Duration,
  Effect,
  FastCheck,
  Fiber,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option,
  TestClock
} from "effect"
import {
  Delivery,
  type DeliveryPass,
  nextAttemptAfter,
  type RetrySchedule,
  retrySpan,
  sleepAfterPass
} from "../src/Delivery.js"
import { DIR_CONCURRENCY, TestTransport, Transport } from "../src/Transport.js"
import { closedPort, gzipBody, newMessage, RAW } from "./Fixtures.js"

const T0 = Date.UTC(2024, 0, 10, 0, 5)
const MINUTE = 60_000

/** Delivery (no loop) over a fresh in-memory SQLite store and the given transport. */
const provideDelivery =
  (transport: Layer.Layer<Transport, unknown>, options: Parameters<typeof Delivery.layerManual>[0] = {}) =>
  <A, E>(effect: Effect.Effect<A, E, Delivery | Outbox>) =>
    effect.pipe(
      Effect.provide(
        Delivery.layerManual(options).pipe(Layer.provide(transport), Layer.provideMerge(Store.layerMemory))
      )
    )

const runOnce = Effect.flatMap(Delivery, (d) => d.runOnce)

const outbox = (id: number) =>
  Effect.flatMap(Outbox, (s) => s.list()).pipe(Effect.map((all) => all.find((m) => m.id === id) as OutboxMessage))

const enqueue = (...messages: ReadonlyArray<ReturnType<typeof newMessage>>) =>
  Effect.flatMap(Outbox, (s) => s.enqueue(messages))

const pass = (delivered: number, retried: number, failed: number): DeliveryPass => ({ delivered, retried, failed })

/** The store's `Outbox` with some methods replaced (`store`: the real one underneath). */
const overOutbox = (f: (store: Outbox["Type"]) => Partial<Outbox["Type"]>) =>
  Layer.effect(
    Outbox,
    Effect.map(Outbox, (store) => Outbox.of({ ...store, ...f(store) }))
  )

describe("nextAttemptAfter", () => {
  const schedule = (attempts: number, options?: RetrySchedule) => {
    let at = new Date(T0)
    const times = [0]
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const next = nextAttemptAfter(attempt, at, options)
      if (next === undefined) break
      times.push((next.getTime() - T0) / MINUTE)
      at = next
    }
    return times
  }

  it("by default: mox's five attempts (docs/design.md#delivery-attempts), then every 4 hours, about 24 hours in all", () => {
    assert.deepStrictEqual(schedule(20), [0, 7.5, 22.5, 52.5, 112.5, 232.5, 472.5, 712.5, 952.5, 1192.5, 1432.5])
    assert.strictEqual(Duration.toMinutes(retrySpan()), 1432.5)
    assert.isUndefined(nextAttemptAfter(11, new Date(T0)))
  })

  it("follows a configured schedule", () => {
    const options = { attempts: 4, backoff: Duration.minutes(1), maxBackoff: Duration.minutes(3) }
    assert.deepStrictEqual(schedule(10, options), [0, 1, 3, 6])
    assert.deepStrictEqual(schedule(10, { ...options, attempts: 1 }), [0])
  })

  it.prop(
    "waits never shrink and never pass the cap; the span is their sum",
    { attempts: FastCheck.integer({ min: 1, max: 40 }), first: FastCheck.integer({ min: 1, max: 10 ** 7 }) },
    ({ attempts, first }) => {
      const options = { attempts, backoff: Duration.millis(first), maxBackoff: Duration.millis(first * 8) }
      const times = [0]
      for (let attempt = 1; ; attempt++) {
        const next = nextAttemptAfter(attempt, new Date(times[times.length - 1]!), options)
        if (next === undefined) break
        times.push(next.getTime())
      }
      assert.lengthOf(times, attempts)
      const waits = times.slice(1).map((t, i) => t - times[i]!)
      for (const [i, w] of waits.entries()) {
        assert.isAtMost(w, first * 8)
        if (i > 0) assert.isAtLeast(w, waits[i - 1]!)
      }
      assert.strictEqual(Duration.toMillis(retrySpan(options)), times[times.length - 1])
    }
  )
})

describe("Delivery.runOnce", () => {
  it.scoped("relay answers 421 twice, then accepts: delivered once after 3 attempts on the backoff", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: [421, 421, "accept"] })
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const [id] = yield* enqueue(newMessage())

        assert.deepStrictEqual(yield* runOnce, pass(0, 1, 0))
        let m = yield* outbox(id!)
        assert.strictEqual(m.status, "queued")
        assert.strictEqual(m.attempts, 1)
        assert.strictEqual(m.nextAttemptAt.getTime(), T0 + 7.5 * MINUTE)
        assert.include(m.lastError, "421")
        // not due yet: nothing happens
        assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0))
        yield* TestClock.setTime(T0 + 7.5 * MINUTE - 1)
        assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0))

        yield* TestClock.setTime(T0 + 7.5 * MINUTE)
        assert.deepStrictEqual(yield* runOnce, pass(0, 1, 0))
        m = yield* outbox(id!)
        assert.strictEqual(m.nextAttemptAt.getTime(), T0 + 22.5 * MINUTE)

        yield* TestClock.setTime(T0 + 22.5 * MINUTE)
        assert.deepStrictEqual(yield* runOnce, pass(1, 0, 0))
        m = yield* outbox(id!)
        assert.strictEqual(m.status, "delivered")
        assert.strictEqual(m.attempts, 3)

        yield* TestClock.adjust(Duration.days(1))
        assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0))
        const received = yield* sink.received
        assert.lengthOf(received, 1)
        assert.strictEqual(Buffer.from(received[0]!.raw).toString(), RAW)
        assert.strictEqual(received[0]!.from, "postmaster@sender.example")
        assert.deepStrictEqual(received[0]!.to, ["tlsrpt@rcpt.example"])
        assert.deepStrictEqual(
          (yield* sink.transactions).map((t) => t.code),
          [421, 421, 250]
        )
      }).pipe(provideDelivery(Transport.layerSmtp({ url: sink.url })))
    })
  )

  it.scoped("550 fails at once and is never retried", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: [550] })
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const [id] = yield* enqueue(newMessage())
        assert.deepStrictEqual(yield* runOnce, pass(0, 0, 1))
        const m = yield* outbox(id!)
        assert.strictEqual(m.status, "failed")
        assert.strictEqual(m.attempts, 1)
        assert.include(m.lastError, "550")
        assert.include(m.lastError, "permanent")
        for (const minutes of [7.5, 22.5, 52.5, 112.5, 24 * 60]) {
          yield* TestClock.setTime(T0 + minutes * MINUTE)
          assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0))
        }
        assert.lengthOf(yield* sink.transactions, 1)
        assert.lengthOf(yield* sink.received, 0)
      }).pipe(provideDelivery(Transport.layerSmtp({ url: sink.url })))
    })
  )

  it.effect("relay down: attempts at 0, 7.5, 22.5, 52.5, 112.5 minutes, then every 4 h; failed after ~24 h", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const [id] = yield* enqueue(newMessage())
        const schedule = [0, 7.5, 22.5, 52.5, 112.5, 232.5, 472.5, 712.5, 952.5, 1192.5, 1432.5]
        for (const [i, minutes] of schedule.entries()) {
          if (i > 0) {
            yield* TestClock.setTime(T0 + minutes * MINUTE - 1)
            assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0), `nothing due just before ${minutes} min`)
          }
          yield* TestClock.setTime(T0 + minutes * MINUTE)
          const last = i === schedule.length - 1
          assert.deepStrictEqual(yield* runOnce, last ? pass(0, 0, 1) : pass(0, 1, 0), `attempt at ${minutes} min`)
          const m = yield* outbox(id!)
          assert.strictEqual(m.attempts, i + 1)
          assert.strictEqual(m.status, last ? "failed" : "queued")
          if (!last) assert.strictEqual(m.nextAttemptAt.getTime(), T0 + schedule[i + 1]! * MINUTE)
          assert.match(m.lastError ?? "", /temporary .*ECONNREFUSED|temporary .*ESOCKET/)
        }
        yield* TestClock.adjust(Duration.days(1))
        assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0))
      }).pipe(provideDelivery(Transport.layerSmtp({ url: `smtp://127.0.0.1:${port}` })))
    })
  )

  it.scoped("https endpoint answers 500, then 201: delivered once after 2 attempts", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make({ script: [500, 201] })
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const destination = `${http.url}/tlsrpt`
        const [id] = yield* enqueue(newMessage({ kind: "https", destination, envelopeFrom: "", payload: gzipBody }))
        assert.deepStrictEqual(yield* runOnce, pass(0, 1, 0))
        assert.include((yield* outbox(id!)).lastError, "HTTP status 500")
        yield* TestClock.setTime(T0 + 7.5 * MINUTE)
        assert.deepStrictEqual(yield* runOnce, pass(1, 0, 0))
        const m = yield* outbox(id!)
        assert.strictEqual(m.status, "delivered")
        assert.strictEqual(m.attempts, 2)
        yield* TestClock.adjust(Duration.days(1))
        assert.deepStrictEqual(yield* runOnce, pass(0, 0, 0))
        const requests = yield* http.requests
        assert.deepStrictEqual(
          requests.map((r) => r.reply),
          [500, 201]
        )
        for (const r of requests) {
          assert.strictEqual(r.method, "POST")
          assert.strictEqual(r.path, "/tlsrpt")
          assert.strictEqual(r.headers["content-type"], "application/tlsrpt+gzip")
          assert.deepStrictEqual(r.body, gzipBody)
        }
      }).pipe(provideDelivery(Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsAllowPrivate: true })))
    })
  )

  it.scoped("one pass gives every due message one attempt, across several batches", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: ["accept", 451] })
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const destinations = Array.from({ length: 7 }, (_, i) => `rua${i}@rcpt${i}.example`)
        yield* enqueue(...destinations.map((destination) => newMessage({ destination })))
        assert.deepStrictEqual(yield* runOnce, pass(6, 1, 0))
        const received = yield* sink.received
        assert.lengthOf(received, 6)
        assert.lengthOf(yield* sink.transactions, 7)
        assert.strictEqual(new Set(received.map((m) => m.to[0])).size, 6)
        assert.lengthOf(yield* Effect.flatMap(Outbox, (s) => s.list({ status: "queued" })), 1)
      }).pipe(provideDelivery(Transport.layerSmtp({ url: sink.url }), { batch: 3, concurrency: 2 }))
    })
  )

  it.scoped("concurrent passes never attempt the same message twice", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make()
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        yield* enqueue(newMessage())
        const passes = yield* Effect.all([runOnce, runOnce, runOnce], { concurrency: "unbounded" })
        assert.strictEqual(
          passes.reduce((n, p) => n + p.delivered, 0),
          1
        )
        assert.lengthOf(yield* sink.transactions, 1)
      }).pipe(provideDelivery(Transport.layerSmtp({ url: sink.url })))
    })
  )

  it.effect(
    "each delivered message is recorded once, as one attempt, before its slot sends another: never more than `concurrency` sent but unrecorded",
    () =>
      Effect.gen(function* () {
        const marks: Array<number> = []
        let sent = 0
        let marked = 0
        let mostUnrecorded = 0
        // each mark statement takes a few scheduler turns, as a real one does, so other sends finish meanwhile
        const counting = overOutbox((store) => ({
          markDelivered: (id, at) =>
            Effect.gen(function* () {
              mostUnrecorded = Math.max(mostUnrecorded, sent - marked)
              marks.push(id)
              for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
              yield* store.markDelivered(id, at)
              marked++
            })
        })).pipe(Layer.provideMerge(Store.layerMemory))
        const concurrency = 3
        yield* Effect.gen(function* () {
          yield* TestClock.setTime(T0)
          const ids = yield* enqueue(
            ...Array.from({ length: 12 }, (_, i) => newMessage({ destination: `rua${i}@rcpt${i}.example` }))
          )
          const transport = yield* Transport
          const counted = Transport.of({ ...transport, send: (m) => Effect.tap(transport.send(m), () => sent++) })
          assert.deepStrictEqual(
            yield* runOnce.pipe(
              Effect.provide(
                Delivery.layerManual({ batch: 5, concurrency }).pipe(Layer.provide(Layer.succeed(Transport, counted)))
              )
            ),
            pass(12, 0, 0)
          )
          assert.deepStrictEqual(
            [...marks].sort((a, b) => a - b),
            [...ids].sort((a, b) => a - b)
          )
          assert.isAtMost(mostUnrecorded, concurrency)
          for (const id of ids) {
            const m = yield* outbox(id)
            assert.strictEqual(m.status, "delivered")
            assert.strictEqual(m.attempts, 1)
          }
        }).pipe(Effect.provide(Layer.merge(Transport.layerTest(), counting)))
      })
  )

  it.effect.each([
    { transport: 16, option: undefined, most: 16 },
    { transport: 16, option: 2, most: 2 },
    { transport: undefined, option: undefined, most: 4 },
    { transport: undefined, option: 6, most: 6 }
  ])(
    "messages in flight: delivery's option, else the transport's own figure, else 4 (transport $transport, option $option)",
    ({ transport: figure, option, most }) =>
      Effect.gen(function* () {
        let inFlight = 0
        let mostInFlight = 0
        // Each send holds its slot for a few scheduler turns, so every slot has started one before any ends.
        const holding = Transport.of({
          send: () =>
            Effect.gen(function* () {
              mostInFlight = Math.max(mostInFlight, ++inFlight)
              for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
              inFlight--
            }),
          concurrency: figure
        })
        yield* Effect.gen(function* () {
          yield* TestClock.setTime(T0)
          yield* enqueue(
            ...Array.from({ length: 40 }, (_, i) => newMessage({ destination: `rua${i}@rcpt${i}.example` }))
          )
          assert.deepStrictEqual(yield* runOnce, pass(40, 0, 0))
          assert.strictEqual(mostInFlight, most)
        }).pipe(provideDelivery(Layer.succeed(Transport, holding), option === undefined ? {} : { concurrency: option }))
      })
  )

  it.scoped("the dir transport takes DIR_CONCURRENCY messages at once; the SMTP relay leaves delivery's default", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "tlsrpt-delivery-dir-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const ofDir = yield* Effect.provide(Transport, Transport.layerDir({ dir }))
      assert.strictEqual(ofDir.concurrency, DIR_CONCURRENCY)
      const ofRelay = yield* Effect.provide(Transport, Transport.layerSmtp({ url: "smtp://127.0.0.1:1" }))
      assert.isUndefined(ofRelay.concurrency)
    })
  )

  it.effect("a permanent transport error fails the message; the test transport sees every attempt", () =>
    Effect.gen(function* () {
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const test = yield* TestTransport
        yield* test.script([{ permanent: true, code: 554, reason: "no such user" }], "gone@rcpt.example")
        const [gone, ok] = yield* enqueue(
          newMessage({ destination: "gone@rcpt.example" }),
          newMessage({ destination: "ok@rcpt.example" })
        )
        assert.deepStrictEqual(yield* runOnce, pass(1, 0, 1))
        assert.strictEqual((yield* outbox(gone!)).status, "failed")
        assert.include((yield* outbox(gone!)).lastError, "no such user")
        assert.strictEqual((yield* outbox(ok!)).status, "delivered")
        assert.deepStrictEqual(
          (yield* test.sent).map((m) => m.destination),
          ["ok@rcpt.example"]
        )
      }).pipe(
        Effect.provide(
          Delivery.layerManual().pipe(Layer.provideMerge(Transport.layerTest()), Layer.provideMerge(Store.layerMemory))
        )
      )
    })
  )
})

describe("Delivery: log lines", () => {
  // Annotated only when the level is logged (Delivery.ts logAbout): each outcome's line with the
  // message's facts at its level, and nothing below the minimum level.
  const lines = (level: LogLevel.LogLevel) => {
    const logged: Array<string> = []
    const capture = Logger.make(({ annotations, logLevel, message }) => {
      const text = (Array.isArray(message) ? message : [message]).join(" ")
      const at = (k: string) => Option.getOrElse(HashMap.get(annotations, k), () => "?")
      logged.push(`${logLevel.label} ${at("outboxId")} ${at("destination")} ${at("attempt")}: ${text.split(":")[0]}`)
    })
    return Effect.gen(function* () {
      yield* TestClock.setTime(T0)
      const test = yield* TestTransport
      yield* test.script([{ permanent: true, code: 554, reason: "no such user" }], "gone@rcpt.example")
      yield* test.script([{ permanent: false, code: 451, reason: "later" }], "later@rcpt.example")
      yield* enqueue(
        newMessage({ destination: "ok@rcpt.example" }),
        newMessage({ destination: "gone@rcpt.example" }),
        newMessage({ destination: "later@rcpt.example" })
      )
      assert.deepStrictEqual(yield* runOnce, pass(1, 1, 1))
      return logged
    }).pipe(
      Effect.provide(
        Delivery.layerManual({ concurrency: 1 }).pipe(
          Layer.provideMerge(Transport.layerTest()),
          Layer.provideMerge(Store.layerMemory)
        )
      ),
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(level)
    )
  }

  it.effect("each outcome is logged at its level with the message's id, destination and attempt", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* lines(LogLevel.Info), [
        "INFO 1 ok@rcpt.example 1: report delivered",
        "ERROR 2 gone@rcpt.example 1: report delivery failed for good",
        "WARN 3 later@rcpt.example 1: report delivery failed, retry at 2024-01-10T00"
      ])
      assert.deepStrictEqual(yield* lines(LogLevel.Error), [
        "ERROR 2 gone@rcpt.example 1: report delivery failed for good"
      ])
    })
  )
})

describe("Delivery.layer (background loop, docs/design.md#delivery-loop)", () => {
  const waitForSleep = TestClock.sleeps().pipe(
    Effect.zipLeft(Effect.yieldNow()),
    Effect.repeat({ until: (sleeps) => Chunk.size(sleeps) > 0 })
  )
  /**
   * The times (epoch ms) of the sleeps begun since `previous` was taken, once there is one (none if
   * the loop does not wake without time passing). TestClock keeps a sleep that lost its race listed
   * until its time comes.
   */
  const sleepingUntil = (previous: ReadonlyArray<number> = []) =>
    TestClock.sleeps().pipe(
      Effect.map((all) => Chunk.toReadonlyArray(all).filter((t) => !previous.includes(t))),
      Effect.zipLeft(Effect.sleep(Duration.millis(1)).pipe(Effect.withClock(Clock.make()))),
      Effect.repeat({ until: (s) => s.length > 0, times: 2_000 })
    )

  it.scoped("survives a defect in one pass (supervised restart after 1 s), stops with its scope", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make()
      yield* TestClock.setTime(T0)
      const firstPass = yield* Deferred.make<void>()
      let calls = 0
      // The store dies on the first pass only.
      const flakyStore = overOutbox((store) => ({
        claimDue: (now, limit, lease) =>
          ++calls === 1
            ? Deferred.succeed(firstPass, undefined).pipe(Effect.zipRight(Effect.dieMessage("disk on fire")))
            : store.claimDue(now, limit, lease)
      })).pipe(Layer.provideMerge(Store.layerMemory))

      yield* Effect.gen(function* () {
        yield* Deferred.await(firstPass)
        // The pass died: the supervisor restarts the loop after its first backoff (1 s).
        yield* waitForSleep
        yield* enqueue(newMessage())
        yield* TestClock.adjust(Duration.millis(999))
        assert.lengthOf(yield* sink.received, 0)
        yield* TestClock.adjust(Duration.millis(1))
        assert.strictEqual(Buffer.from((yield* sink.take).raw).toString(), RAW)
        assert.isAtLeast(calls, 2)
      }).pipe(
        Effect.provide(
          Delivery.layer().pipe(Layer.provide(Transport.layerSmtp({ url: sink.url })), Layer.provideMerge(flakyStore))
        )
      )
      // the loop is gone with its layer: time passing makes no more passes
      const before = calls
      yield* TestClock.adjust(Duration.hours(1))
      assert.strictEqual(calls, before)
    })
  )

  it.scoped(
    "sleeps while nothing is due; delivers a message queued during the sleep at once, and retries at its due time",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        let passes = 0
        const countingStore = overOutbox((store) => ({
          claimDue: (...args) =>
            Effect.zipRight(
              Effect.sync(() => passes++),
              store.claimDue(...args)
            )
        })).pipe(Layer.provideMerge(Store.layerMemory))
        yield* Effect.gen(function* () {
          const test = yield* TestTransport
          // An empty outbox: the loop sleeps for the whole cap, not a poll interval.
          const first = yield* sleepingUntil()
          assert.deepStrictEqual(first, [T0 + 5 * MINUTE])
          assert.strictEqual(passes, 1)
          yield* TestClock.adjust(Duration.minutes(2))
          assert.strictEqual(passes, 1)

          // Queued while it sleeps (the store raises OutboxSignal): attempted at once, no time passing.
          yield* test.script([{ permanent: false, code: 421, reason: "try later" }])
          const [id] = yield* enqueue(newMessage())
          const retryAt = T0 + 2 * MINUTE + 7.5 * MINUTE
          // The failed attempt's retry is the earliest due time: the loop sleeps until it.
          const second = yield* sleepingUntil(first)
          assert.deepStrictEqual(second, [Math.min(retryAt, T0 + 2 * MINUTE + 5 * MINUTE)])
          assert.lengthOf(yield* test.attempts, 1)
          assert.strictEqual((yield* outbox(id!)).nextAttemptAt.getTime(), retryAt)
          // the cap (5 minutes) comes first: a pass that finds nothing due, then a sleep until the retry
          yield* TestClock.adjust(Duration.minutes(5))
          assert.deepStrictEqual(yield* sleepingUntil([...first, ...second]), [retryAt])
          assert.lengthOf(yield* test.attempts, 1)
          yield* TestClock.adjust(Duration.millis(retryAt - (T0 + 7 * MINUTE) - 1))
          assert.lengthOf(yield* test.attempts, 1)
          yield* TestClock.adjust(Duration.millis(1))
          yield* waitForSleep
          assert.lengthOf(yield* test.attempts, 2)
          assert.lengthOf(yield* test.sent, 1)
          assert.strictEqual((yield* outbox(id!)).status, "delivered")
        }).pipe(
          Effect.provide(
            Delivery.layer().pipe(Layer.provideMerge(Transport.layerTest()), Layer.provideMerge(countingStore))
          )
        )
      })
  )

  it.scoped("a message another process queued (no signal here) is delivered by the maxSleep safety net", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "tlsrpt.db")
      yield* TestClock.setTime(T0)
      // Two store layers on one file: the other's writes raise its own signal, not this loop's.
      const other = yield* Layer.build(Store.layer({ filename }))
      yield* Effect.gen(function* () {
        const test = yield* TestTransport
        yield* waitForSleep
        yield* Effect.flatMap(Outbox, (s) => s.enqueue([newMessage()])).pipe(Effect.provide(other))
        yield* TestClock.adjust(Duration.seconds(59))
        assert.lengthOf(yield* test.sent, 0)
        yield* TestClock.adjust(Duration.seconds(1))
        yield* waitForSleep
        assert.lengthOf(yield* test.sent, 1)
      }).pipe(
        Effect.provide(
          Delivery.layer({ maxSleep: Duration.minutes(1) }).pipe(
            Layer.provideMerge(Transport.layerTest()),
            Layer.provideMerge(Store.layer({ filename }))
          )
        )
      )
    })
  )

  it.prop(
    "sleepAfterPass: until the due time, never past the cap, at least 1 s",
    {
      now: FastCheck.integer({ min: 0, max: 2 ** 40 }),
      offset: FastCheck.option(FastCheck.integer({ min: -(10 ** 9), max: 10 ** 9 })),
      max: FastCheck.integer({ min: 1_000, max: 10 ** 8 })
    },
    ({ now, offset, max }) => {
      const due = offset === null ? undefined : new Date(now + offset)
      const wait = sleepAfterPass(now, due, max)
      assert.isAtMost(wait, max)
      assert.isAtLeast(wait, 1_000)
      if (offset === null) assert.strictEqual(wait, max)
      else if (offset >= 1_000 && offset <= max) assert.strictEqual(wait, offset)
    }
  )
})

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tlsrpt-delivery-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("claims (issue 11.2: several processes on one database)", () => {
  it.scoped("two Delivery instances on two connections to one SQLite file deliver each message once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "tlsrpt.db")
      const sink = yield* SmtpSink.make()
      yield* TestClock.setTime(T0)
      const instance = () =>
        Delivery.layerManual({ batch: 2, concurrency: 2 }).pipe(
          Layer.provide(Transport.layerSmtp({ url: sink.url })),
          Layer.provideMerge(Store.layer({ filename }))
        )
      const destinations = Array.from({ length: 8 }, (_, i) => `rua${i}@rcpt${i}.example`)
      yield* enqueue(...destinations.map((destination) => newMessage({ destination }))).pipe(
        Effect.provide(Store.layer({ filename }))
      )
      const [a, b] = yield* Effect.all(
        [runOnce.pipe(Effect.provide(instance())), runOnce.pipe(Effect.provide(instance()))],
        {
          concurrency: "unbounded"
        }
      )
      assert.strictEqual(a!.delivered + b!.delivered, 8)
      const received = yield* sink.received
      assert.deepStrictEqual(received.map((m) => m.to[0]).sort(), [...destinations].sort())
      const all = yield* Effect.flatMap(Outbox, (s) => s.list()).pipe(Effect.provide(Store.layer({ filename })))
      assert.deepStrictEqual(
        all.map((m) => [m.status, m.attempts]),
        destinations.map(() => ["delivered", 1])
      )
    })
  )

  it.effect("a claim keeps other owners off until it expires; recording the outcome or releasing ends it", () =>
    Effect.gen(function* () {
      const store = yield* Outbox
      const [x, y] = yield* store.enqueue([
        newMessage({ destination: "x@a.example" }),
        newMessage({ destination: "y@a.example" })
      ])
      const now = new Date(T0)
      const until = new Date(T0 + 10 * MINUTE)
      const ids = (ms: ReadonlyArray<OutboxMessage>) => ms.map((m) => m.id)
      assert.deepStrictEqual(ids(yield* store.claimDue(now, 1, { owner: "a", until })), [x])
      assert.deepStrictEqual(ids(yield* store.claimDue(now, 10, { owner: "b", until })), [y])
      assert.deepStrictEqual(ids(yield* store.claimDue(now, 10, { owner: "c", until })), [])
      // b gives y back (an interrupted attempt); a's claim on x runs until it expires
      yield* store.releaseClaim(y!, "not-b")
      assert.deepStrictEqual(ids(yield* store.claimDue(now, 10, { owner: "c", until })), [])
      yield* store.releaseClaim(y!, "b")
      assert.deepStrictEqual(ids(yield* store.claimDue(now, 10, { owner: "c", until })), [y])
      assert.deepStrictEqual(ids(yield* store.claimDue(until, 10, { owner: "d", until: new Date(T0 + 20 * MINUTE) })), [
        x,
        y
      ])
      // a failed attempt ends the claim: due again at its next attempt time, for anyone
      yield* store.markAttemptFailed(x!, { error: "451", at: until, nextAttemptAt: until })
      assert.deepStrictEqual(ids(yield* store.claimDue(until, 10, { owner: "e", until: new Date(T0 + 20 * MINUTE) })), [
        x
      ])
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.scoped(
    "a pass longer than the lease claims each batch from the clock of that batch: no second owner takes it",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const store = yield* Outbox
        const sent: Array<number> = []
        // each attempt takes one minute; the lease is two
        const slow = Transport.of({
          send: (m) => Effect.sleep(Duration.minutes(1)).pipe(Effect.as(void sent.push(m.id)))
        })
        const make = Delivery.make({ batch: 1, concurrency: 1, lease: Duration.minutes(2) }).pipe(
          Effect.provideService(Transport, slow)
        )
        const [a, b] = [yield* make, yield* make]
        yield* store.enqueue([1, 2, 3].map((i) => newMessage({ destination: `r${i}@rcpt.example` })))
        const passA = yield* Effect.fork(a.runOnce)
        yield* TestClock.adjust(Duration.minutes(2))
        // A claimed the third message at T0 + 2 min; B comes 30 s later and must find it claimed
        yield* TestClock.adjust(Duration.seconds(30))
        const passB = yield* Effect.fork(b.runOnce)
        yield* TestClock.adjust(Duration.minutes(2))
        const [ra, rb] = [yield* Fiber.join(passA), yield* Fiber.join(passB)]
        assert.deepStrictEqual([ra.delivered, rb.delivered], [3, 0])
        assert.strictEqual(new Set(sent).size, sent.length)
      }).pipe(Effect.provide(Store.layerMemory))
  )

  it.scoped("an interrupted attempt gives its claim back: another owner may take it at once", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make({ script: ["hang", 201] })
      yield* TestClock.setTime(T0)
      yield* Effect.gen(function* () {
        const store = yield* Outbox
        const [id] = yield* store.enqueue([
          newMessage({ kind: "https", destination: `${http.url}/r`, envelopeFrom: "", payload: gzipBody })
        ])
        const fiber = yield* Effect.fork(runOnce)
        yield* http.take
        yield* Fiber.interrupt(fiber)
        const m = yield* outbox(id!)
        assert.deepStrictEqual([m.status, m.attempts], ["queued", 0])
        const claimed = yield* store.claimDue(new Date(T0), 10, { owner: "next", until: new Date(T0 + MINUTE) })
        assert.deepStrictEqual(
          claimed.map((c) => c.id),
          [id]
        )
      }).pipe(provideDelivery(Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsAllowPrivate: true })))
    })
  )
})

describe("the dead letter (issue 10.7)", () => {
  it.effect("a message that fails every attempt stays failed with its last error; requeue sends it again", () =>
    Effect.gen(function* () {
      const test = yield* TestTransport
      const store = yield* Outbox
      yield* TestClock.setTime(T0)
      const schedule: RetrySchedule = { attempts: 3, backoff: Duration.minutes(10), maxBackoff: Duration.minutes(15) }
      yield* test.script(
        Array.from({ length: 3 }, (_, i) => ({ permanent: false, code: 451, reason: `greylisted ${i + 1}` })),
        "tlsrpt@rcpt.example"
      )
      const [id, other] = yield* store.enqueue([newMessage(), newMessage({ destination: "ok@rcpt.example" })])
      yield* Effect.gen(function* () {
        const delivery = yield* Delivery
        // ok@ is delivered on the first pass; the other one fails at 0, 10 and 25 minutes
        assert.deepStrictEqual(yield* delivery.runOnce, pass(1, 1, 0))
        yield* TestClock.setTime(T0 + 10 * MINUTE)
        assert.deepStrictEqual(yield* delivery.runOnce, pass(0, 1, 0))
        yield* TestClock.setTime(T0 + 25 * MINUTE)
        assert.deepStrictEqual(yield* delivery.runOnce, pass(0, 0, 1))
        let m = yield* outbox(id!)
        assert.deepStrictEqual([m.status, m.attempts], ["failed", 3])
        assert.include(m.lastError, "greylisted 3")
        assert.deepStrictEqual(
          (yield* store.list({ status: "failed" })).map((f) => f.id),
          [id]
        )
        yield* TestClock.adjust(Duration.days(3))
        assert.deepStrictEqual(yield* delivery.runOnce, pass(0, 0, 0))

        // the operator re-queues it (a delivered message cannot be)
        assert.deepStrictEqual(yield* store.requeue({ id: other! }, new Date(T0)), [])
        const now = new Date(T0 + 3 * 24 * 60 * MINUTE + 25 * MINUTE)
        assert.deepStrictEqual(yield* store.requeue("failed", now), [id])
        m = yield* outbox(id!)
        assert.deepStrictEqual([m.status, m.attempts, m.nextAttemptAt.getTime()], ["queued", 0, now.getTime()])
        assert.deepStrictEqual(yield* delivery.runOnce, pass(1, 0, 0))
        assert.strictEqual((yield* outbox(id!)).status, "delivered")
        assert.deepStrictEqual(yield* store.requeue("failed", now), [])
      }).pipe(Effect.provide(Delivery.layerManual({ schedule })))
    }).pipe(Effect.provide(Transport.layerTest().pipe(Layer.provideMerge(Store.layerMemory))))
  )
})
