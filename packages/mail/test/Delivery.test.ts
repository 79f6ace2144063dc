import { assert, describe, it } from "@effect/vitest"
import { type OutboxMessage, ResultStore } from "@tlsrpt/store"
import { HttpSink, SmtpSink } from "@tlsrpt/testkit"
import { Chunk, Deferred, Duration, Effect, Layer, TestClock } from "effect"
import { Delivery, type DeliveryPass, nextAttemptAfter } from "../src/Delivery.js"
import { TestTransport, Transport } from "../src/Transport.js"
import { closedPort, gzipBody, newMessage, RAW } from "./Fixtures.js"

const T0 = Date.UTC(2024, 0, 10, 0, 5)
const MINUTE = 60_000

/** Delivery (no loop) over a fresh in-memory SQLite store and the given transport. */
const provideDelivery =
  (transport: Layer.Layer<Transport, unknown>, options: Parameters<typeof Delivery.layerManual>[0] = {}) =>
  <A, E>(effect: Effect.Effect<A, E, Delivery | ResultStore>) =>
    effect.pipe(
      Effect.provide(
        Delivery.layerManual(options).pipe(Layer.provide(transport), Layer.provideMerge(ResultStore.layerMemory))
      )
    )

const runOnce = Effect.flatMap(Delivery, (d) => d.runOnce)

const outbox = (id: number) =>
  Effect.flatMap(ResultStore, (s) => s.listOutbox()).pipe(
    Effect.map((all) => all.find((m) => m.id === id) as OutboxMessage)
  )

const enqueue = (...messages: ReadonlyArray<ReturnType<typeof newMessage>>) =>
  Effect.flatMap(ResultStore, (s) => s.enqueue(messages))

const pass = (delivered: number, retried: number, failed: number): DeliveryPass => ({ delivered, retried, failed })

describe("nextAttemptAfter (spec §9.10)", () => {
  it("gives attempts at 0, 7.5, 22.5, 52.5 and 112.5 minutes, and none after the 5th", () => {
    let at = new Date(T0)
    const times = [0]
    for (let attempt = 1; attempt <= 5; attempt++) {
      const next = nextAttemptAfter(attempt, at)
      if (next === undefined) break
      times.push((next.getTime() - T0) / MINUTE)
      at = next
    }
    assert.deepStrictEqual(times, [0, 7.5, 22.5, 52.5, 112.5])
    assert.isUndefined(nextAttemptAfter(5, at))
  })
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

  it.effect("relay down: attempts at 0, 7.5, 22.5, 52.5, 112.5 minutes, then failed for good", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const [id] = yield* enqueue(newMessage())
        const schedule = [0, 7.5, 22.5, 52.5, 112.5]
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
        assert.lengthOf(yield* Effect.flatMap(ResultStore, (s) => s.listOutbox({ status: "queued" })), 1)
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
          Delivery.layerManual().pipe(
            Layer.provideMerge(Transport.layerTest()),
            Layer.provideMerge(ResultStore.layerMemory)
          )
        )
      )
    })
  )
})

describe("Delivery.layer (background loop)", () => {
  it.scoped("polls on its interval, survives a defect in one pass, and stops with its scope", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make()
      yield* TestClock.setTime(T0)
      const firstPass = yield* Deferred.make<void>()
      let calls = 0
      // The store dies on the first pass only.
      const flakyStore = Layer.effect(
        ResultStore,
        Effect.map(ResultStore, (store) =>
          ResultStore.of({
            ...store,
            dueMessages: (now, limit) =>
              ++calls === 1
                ? Deferred.succeed(firstPass, undefined).pipe(Effect.zipRight(Effect.dieMessage("disk on fire")))
                : store.dueMessages(now, limit)
          })
        )
      ).pipe(Layer.provideMerge(ResultStore.layerMemory))
      const waitForSleep = TestClock.sleeps().pipe(
        Effect.zipLeft(Effect.yieldNow()),
        Effect.repeat({ until: (sleeps) => Chunk.size(sleeps) > 0 })
      )

      yield* Effect.gen(function* () {
        yield* Deferred.await(firstPass)
        yield* waitForSleep
        yield* enqueue(newMessage())
        assert.lengthOf(yield* sink.received, 0)
        yield* TestClock.adjust(Duration.seconds(30))
        const mail = yield* sink.take
        assert.strictEqual(Buffer.from(mail.raw).toString(), RAW)
        assert.isAtLeast(calls, 2)
      }).pipe(
        Effect.provide(
          Delivery.layer({ pollInterval: Duration.seconds(30) }).pipe(
            Layer.provide(Transport.layerSmtp({ url: sink.url })),
            Layer.provideMerge(flakyStore)
          )
        )
      )
      // the loop is gone with its layer: time passing makes no more passes
      const before = calls
      yield* TestClock.adjust(Duration.minutes(10))
      assert.strictEqual(calls, before)
    })
  )
})
