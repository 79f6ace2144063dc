import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { Domain } from "@tlsrpt/core"
import { Effect, Fiber, HashMap, Layer, List, Logger, Metric, Ref, TestClock } from "effect"
import { Dns, type TestAnswer } from "../src/Dns.js"
import { cacheHitsTotal, lookupsTotal, recordName, TlsrptLookup } from "../src/TlsrptLookup.js"

// A full collection on demand (a context made after the flag sees `gc`), to see what a cache keeps alive.
setFlagsFromString("--expose-gc")
const gc: () => void = runInNewContext("gc")

const VALID = "v=TLSRPTv1; rua=mailto:tlsrpt@a.example"
const VALID2 = "v=TLSRPTv1; rua=https://a.example/tlsrpt"
const BAD = "v=TLSRPTv1; rua=mailto:x@a.example other"

const lookup = (domain: string) => Effect.flatMap(TlsrptLookup, (l) => l.lookup(Domain.unsafeMake(domain)))

/** A Dns over a Ref of answers that records every name asked. */
const recordingDns = Effect.gen(function* () {
  const answers = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(new Map())
  const asked = yield* Ref.make<ReadonlyArray<string>>([])
  const layer = Layer.effect(
    Dns,
    Effect.map(Dns, (inner) => ({
      txt: (name: string) =>
        Effect.zipRight(
          Ref.update(asked, (a) => [...a, name]),
          inner.txt(name)
        )
    }))
  ).pipe(Layer.provide(Dns.layerTestRef(answers)))
  const set = (domain: string, answer: TestAnswer) =>
    Ref.update(answers, (m) => new Map([...m, [`_smtp._tls.${domain}`, answer]]))
  return { layer, set, asked: Ref.get(asked) }
})

describe("TlsrptLookup.layer", () => {
  const run = <A, E>(answers: Record<string, TestAnswer>, self: Effect.Effect<A, E, TlsrptLookup>) =>
    self.pipe(Effect.provide(TlsrptLookup.layer.pipe(Layer.provide(Dns.layerTest(answers)))))

  it.effect("queries _smtp._tls.<A-label>. and returns the record, its TXT and the domain", () =>
    Effect.gen(function* () {
      const dns = yield* recordingDns
      yield* dns.set("xn--74h.example", ["v=spf1 -all", VALID])
      const found = yield* lookup("\u263a.example").pipe(
        Effect.provide(TlsrptLookup.layer.pipe(Layer.provide(dns.layer)))
      )
      assert.deepStrictEqual(yield* dns.asked, ["_smtp._tls.xn--74h.example."])
      assert.strictEqual(found.txt, VALID)
      assert.strictEqual(found.domain.ascii, "xn--74h.example")
      assert.deepStrictEqual(found.record.ruas, [["mailto:tlsrpt@a.example"]])
      assert.strictEqual(recordName(Domain.unsafeMake("A.Example")), "_smtp._tls.a.example.")
    })
  )

  it.effect("ignores other TXT records, accepts `v=TLSRPTv1 ;`", () =>
    run(
      {
        "_smtp._tls.a.example": ["hello", "v=TLSRPTv10; rua=mailto:x@a.example", "v=TLSRPTv1 ; rua=mailto:y@a.example"]
      },
      Effect.gen(function* () {
        const found = yield* lookup("a.example")
        assert.strictEqual(found.txt, "v=TLSRPTv1 ; rua=mailto:y@a.example")
      })
    )
  )

  it.effect("NXDOMAIN, NODATA and only non-TLSRPT TXTs are NoTlsrptRecord", () =>
    run(
      {
        "_smtp._tls.nx.example": { error: "nxdomain" },
        "_smtp._tls.nodata.example": { error: "nodata" },
        "_smtp._tls.other.example": ["v=spf1 -all", "v=TLSRPTv1"]
      },
      Effect.gen(function* () {
        for (const d of ["nx.example", "nodata.example", "other.example", "unlisted.example"]) {
          const e = yield* Effect.flip(lookup(d))
          assert.strictEqual(e._tag, "NoTlsrptRecord", d)
          assert.strictEqual(e.domain, d)
        }
      })
    )
  )

  it.effect("SERVFAIL and timeouts are TlsrptTemporaryError with the code", () =>
    run(
      { "_smtp._tls.fail.example": { error: "servfail" }, "_smtp._tls.slow.example": { error: "timeout" } },
      Effect.gen(function* () {
        const fail = yield* Effect.flip(lookup("fail.example"))
        assert.deepStrictEqual(
          [fail._tag, fail.domain, fail._tag === "TlsrptTemporaryError" && fail.code],
          ["TlsrptTemporaryError", "fail.example", "ESERVFAIL"]
        )
        const slow = yield* Effect.flip(lookup("slow.example"))
        assert.strictEqual(slow._tag === "TlsrptTemporaryError" && slow.code, "ETIMEOUT")
      })
    )
  )

  it.effect("two valid records are MultipleTlsrptRecords with both texts (RFC 8460 §3)", () =>
    run(
      { "_smtp._tls.a.example": [VALID, "other", VALID2] },
      Effect.gen(function* () {
        const e = yield* Effect.flip(lookup("a.example"))
        assert.strictEqual(e._tag, "MultipleTlsrptRecords")
        if (e._tag === "MultipleTlsrptRecords") assert.deepStrictEqual(e.records, [VALID, VALID2])
      })
    )
  )

  it.effect(
    "a TLSRPT record with a syntax error wins over a valid one, in either order (docs/design.md#record-lookup)",
    () =>
      run(
        { "_smtp._tls.a.example": [VALID, BAD], "_smtp._tls.b.example": [BAD, VALID, VALID2] },
        Effect.gen(function* () {
          for (const d of ["a.example", "b.example"]) {
            const e = yield* Effect.flip(lookup(d))
            assert.strictEqual(e._tag, "TlsrptSyntaxError", d)
            if (e._tag === "TlsrptSyntaxError") {
              assert.strictEqual(e.txt, BAD)
              assert.strictEqual(e.reason, "leftover chars")
              assert.strictEqual(e.position, BAD.indexOf("other"))
              assert.strictEqual(e.domain, d)
            }
          }
        })
      )
  )

  it.effect("DNS changes between scenarios through the Ref are seen at once", () =>
    Effect.gen(function* () {
      const dns = yield* recordingDns
      const layer = TlsrptLookup.layer.pipe(Layer.provide(dns.layer))
      yield* dns.set("a.example", { error: "servfail" })
      assert.strictEqual(
        (yield* Effect.flip(lookup("a.example").pipe(Effect.provide(layer))))._tag,
        "TlsrptTemporaryError"
      )
      yield* dns.set("a.example", [VALID])
      assert.strictEqual((yield* lookup("a.example").pipe(Effect.provide(layer))).txt, VALID)
    })
  )

  it.effect("counts tlsrpt_lookups_total by outcome", () =>
    run(
      {
        "_smtp._tls.ok.example": [VALID],
        "_smtp._tls.multi.example": [VALID, VALID2],
        "_smtp._tls.bad.example": [BAD],
        "_smtp._tls.fail.example": { error: "servfail" }
      },
      Effect.gen(function* () {
        const count = (outcome: string) =>
          Effect.map(Metric.value(Metric.tagged(lookupsTotal, "outcome", outcome)), (s) => s.count)
        const outcomes = ["ok", "no_record", "multiple", "syntax", "temporary"]
        const before = yield* Effect.forEach(outcomes, count)
        for (const d of ["ok.example", "none.example", "multi.example", "bad.example", "fail.example", "ok.example"]) {
          yield* Effect.either(lookup(d))
        }
        const after = yield* Effect.forEach(outcomes, count)
        assert.deepStrictEqual(
          after.map((n, i) => n - before[i]!),
          [2, 1, 1, 1, 1]
        )
      })
    )
  )

  it.effect("logs one line per error outcome, annotated with the domain", () =>
    Effect.gen(function* () {
      const lines = yield* Ref.make<ReadonlyArray<{ message: string; level: string; domain: unknown }>>([])
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        const text = List.toArray(message as List.List<unknown>)
          .map(String)
          .join(" ")
        const entry = { message: text, level: logLevel.label, domain: HashMap.unsafeGet(annotations, "domain") }
        Effect.runSync(Ref.update(lines, (l) => [...l, entry]))
      })
      yield* run(
        {
          "_smtp._tls.ok.example": [VALID],
          "_smtp._tls.bad.example": [BAD],
          "_smtp._tls.fail.example": { error: "servfail" }
        },
        Effect.forEach(["ok.example", "bad.example", "fail.example", "none.example"], (d) => Effect.either(lookup(d)))
      ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      const logged = yield* Ref.get(lines)
      assert.deepStrictEqual(
        logged.map((l) => [l.domain, l.level]),
        [
          ["bad.example", "WARN"],
          ["fail.example", "WARN"],
          ["none.example", "INFO"]
        ]
      )
      assert.include(logged[0]!.message, "leftover chars")
    })
  )
})

describe("TlsrptLookup.layerCached (TestClock)", () => {
  const setup = (options?: Parameters<typeof TlsrptLookup.layerCached>[0]) =>
    Effect.gen(function* () {
      const dns = yield* recordingDns
      const layer = TlsrptLookup.layerCached(options).pipe(Layer.provide(dns.layer))
      const service = yield* Effect.provide(TlsrptLookup, layer)
      const look = (d: string) => Effect.either(service.lookup(Domain.unsafeMake(d)))
      const queries = Effect.map(dns.asked, (a) => a.length)
      return { ...dns, look, queries }
    })

  it.effect("keeps a positive answer until its TTL, then asks again", () =>
    Effect.gen(function* () {
      const t = yield* setup()
      yield* t.set("a.example", { records: [VALID], ttl: 60 })
      const hitsBefore = (yield* Metric.value(cacheHitsTotal)).count
      assert.strictEqual((yield* t.look("a.example"))._tag, "Right")
      yield* t.set("a.example", [VALID2])
      yield* TestClock.adjust("59 seconds")
      const cached = yield* t.look("A.EXAMPLE")
      assert.strictEqual(cached._tag === "Right" && cached.right.txt, VALID)
      assert.strictEqual(yield* t.queries, 1)
      assert.strictEqual((yield* Metric.value(cacheHitsTotal)).count - hitsBefore, 1)
      yield* TestClock.adjust("1 second")
      const fresh = yield* t.look("a.example")
      assert.strictEqual(fresh._tag === "Right" && fresh.right.txt, VALID2)
      assert.strictEqual(yield* t.queries, 2)
    })
  )

  it.effect("maxTtlSeconds bounds a long TTL", () =>
    Effect.gen(function* () {
      const t = yield* setup({ maxTtlSeconds: 10 })
      yield* t.set("a.example", { records: [VALID], ttl: 86_400 })
      yield* t.look("a.example")
      yield* TestClock.adjust("9 seconds")
      yield* t.look("a.example")
      assert.strictEqual(yield* t.queries, 1)
      yield* TestClock.adjust("1 second")
      yield* t.look("a.example")
      assert.strictEqual(yield* t.queries, 2)
    })
  )

  it.effect("never caches a temporary error: the next lookup at the same instant asks again", () =>
    Effect.gen(function* () {
      const t = yield* setup()
      yield* t.set("a.example", { error: "servfail" })
      const first = yield* t.look("a.example")
      assert.strictEqual(first._tag === "Left" && first.left._tag, "TlsrptTemporaryError")
      yield* t.set("a.example", [VALID])
      const second = yield* t.look("a.example")
      assert.strictEqual(second._tag === "Right" && second.right.txt, VALID)
      assert.strictEqual(yield* t.queries, 2)
    })
  )

  it.effect("caches NoTlsrptRecord for negativeTtlSeconds", () =>
    Effect.gen(function* () {
      const t = yield* setup({ negativeTtlSeconds: 30 })
      const first = yield* t.look("a.example")
      assert.strictEqual(first._tag === "Left" && first.left._tag, "NoTlsrptRecord")
      yield* t.set("a.example", [VALID])
      yield* TestClock.adjust("29 seconds")
      const cached = yield* t.look("a.example")
      assert.strictEqual(cached._tag === "Left" && cached.left._tag, "NoTlsrptRecord")
      assert.strictEqual(yield* t.queries, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* t.look("a.example"))._tag, "Right")
      assert.strictEqual(yield* t.queries, 2)
    })
  )

  it.effect("does not cache syntax errors, multiple records, or a TTL of 0", () =>
    Effect.gen(function* () {
      const t = yield* setup()
      yield* t.set("bad.example", [BAD])
      yield* t.set("multi.example", [VALID, VALID2])
      yield* t.set("zero.example", { records: [VALID], ttl: 0 })
      for (const d of ["bad.example", "multi.example", "zero.example"]) {
        yield* t.look(d)
        yield* t.look(d)
      }
      assert.strictEqual(yield* t.queries, 6)
    })
  )

  it.effect("capacity evicts the oldest entry", () =>
    Effect.gen(function* () {
      const t = yield* setup({ capacity: 2 })
      for (const d of ["a.example", "b.example", "c.example"]) yield* t.set(d, [VALID])
      for (const d of ["a.example", "b.example", "c.example"]) yield* t.look(d)
      assert.strictEqual(yield* t.queries, 3)
      yield* t.look("c.example")
      yield* t.look("b.example")
      assert.strictEqual(yield* t.queries, 3)
      yield* t.look("a.example")
      assert.strictEqual(yield* t.queries, 4)
    })
  )

  /** layerCached over a DNS that takes a second to answer a.example, counting the queries. */
  const slowService = Effect.gen(function* () {
    const answers = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(new Map([["_smtp._tls.a.example", [VALID]]]))
    const asked = yield* Ref.make(0)
    const slowDns = Layer.effect(
      Dns,
      Effect.map(Dns, (inner) => ({
        txt: (name: string) =>
          Ref.update(asked, (n) => n + 1).pipe(
            Effect.zipRight(Effect.sleep("1 second")),
            Effect.zipRight(inner.txt(name))
          )
      }))
    ).pipe(Layer.provide(Dns.layerTestRef(answers)))
    const service = yield* Effect.provide(TlsrptLookup, TlsrptLookup.layerCached().pipe(Layer.provide(slowDns)))
    return { service, asked: Ref.get(asked) }
  })

  it.effect("concurrent lookups of one name share one query", () =>
    Effect.gen(function* () {
      // A server that takes a second to answer: both lookups are in flight at once.
      const { service, asked } = yield* slowService
      const both = yield* Effect.fork(
        Effect.all([service.lookup(Domain.unsafeMake("a.example")), service.lookup(Domain.unsafeMake("a.example"))], {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("1 second")
      const [first, second] = yield* Fiber.join(both)
      assert.strictEqual(first.txt, VALID)
      assert.strictEqual(second.txt, VALID)
      assert.strictEqual(yield* asked, 1)
    })
  )

  it.effect("a lookup sharing an interrupted lookup's query asks again itself", () =>
    Effect.gen(function* () {
      const { service, asked } = yield* slowService
      const first = yield* Effect.fork(service.lookup(Domain.unsafeMake("a.example")))
      yield* TestClock.adjust("500 millis")
      const second = yield* Effect.fork(service.lookup(Domain.unsafeMake("a.example")))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(second)).txt, VALID)
      assert.strictEqual(yield* asked, 2)
    })
  )

  it.effect("a cached answer carries the caller's domain", () =>
    Effect.gen(function* () {
      const t = yield* setup()
      yield* t.set("xn--74h.example", [VALID])
      yield* t.look("xn--74h.example")
      const found = yield* t.look("\u263a.example")
      assert.strictEqual(found._tag === "Right" && found.right.domain.unicode, "\u263a.example")
      assert.strictEqual(yield* t.queries, 1)
    })
  )

  it.live('a cached answer or "no record" keeps nothing of the lookup that made it alive', () =>
    Effect.gen(function* () {
      const service = yield* Effect.provide(
        TlsrptLookup,
        TlsrptLookup.layerCached().pipe(Layer.provide(Dns.layerTest({ "_smtp._tls.a.example": [VALID] })))
      )
      // Each lookup in a fiber of its own; only a weak reference to the fiber is kept.
      const lookedUpIn = (domain: string) =>
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(Effect.either(service.lookup(Domain.unsafeMake(domain))))
          yield* Fiber.join(fiber)
          return new WeakRef(fiber)
        })
      const refs = [yield* lookedUpIn("a.example"), yield* lookedUpIn("none.example")]
      // after this job (a WeakRef holds its target until the job ends), a full collection
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
      gc()
      assert.deepStrictEqual(
        refs.map((r) => r.deref() === undefined),
        [true, true]
      )
      // both entries are still there: the next lookups are cache hits
      const hitsBefore = (yield* Metric.value(cacheHitsTotal)).count
      assert.strictEqual((yield* Effect.either(service.lookup(Domain.unsafeMake("a.example"))))._tag, "Right")
      const none = yield* Effect.flip(service.lookup(Domain.unsafeMake("none.example")))
      assert.deepStrictEqual([none._tag, none.domain], ["NoTlsrptRecord", "none.example"])
      assert.strictEqual((yield* Metric.value(cacheHitsTotal)).count - hitsBefore, 2)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
  )

  it.effect("an expired entry is let go at a miss a minute later, though its name is never asked again", () =>
    Effect.gen(function* () {
      const t = yield* setup({ maxTtlSeconds: 10 })
      yield* t.set("a.example", [VALID])
      // only a weak reference to what the answer holds
      const record = yield* Effect.map(t.look("a.example"), (r) =>
        r._tag === "Right" ? new WeakRef(r.right.record) : undefined
      )
      const collected = Effect.gen(function* () {
        // after this job (a WeakRef holds its target until the job ends), a full collection
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
        gc()
        return record?.deref() === undefined
      })
      assert.isFalse(yield* collected, "cached for its TTL")
      // past the TTL; a miss on another name sweeps (the first miss of the layer swept, so a minute on)
      yield* TestClock.adjust("60 seconds")
      yield* t.look("b.example")
      assert.isTrue(yield* collected)
      assert.strictEqual(yield* t.queries, 2)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
  )
})
