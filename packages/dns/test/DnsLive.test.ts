/**
 * The live `Dns.layer` (node:dns / c-ares) against the loopback DNS server of testkit: real UDP,
 * real TCP after truncation, real timeouts. Live clock: c-ares timers are real.
 */
import { assert, describe, it } from "@effect/vitest"
import { Domain } from "@tlsrpt/core"
import { DnsServer } from "@tlsrpt/testkit"
import { Effect, Either, Exit, Fiber, Layer, Logger, Option, Schedule, Schema, Scope, TestClock } from "effect"
import { Dns, DnsConfig, type LiveOptions } from "../src/Dns.js"
import { TlsrptLookup } from "../src/TlsrptLookup.js"

const VALID = "v=TLSRPTv1; rua=mailto:tlsrpt@a.example"

// Live tests keep the default logger; the lookup's log lines are checked in TlsrptLookup.test.ts.
const live = (server: { readonly address: string }, options: LiveOptions = {}) =>
  TlsrptLookup.layer.pipe(
    Layer.provideMerge(Dns.layer({ servers: [server.address], timeoutMs: 1000, tries: 2, ...options })),
    Layer.merge(Logger.remove(Logger.defaultLogger))
  )

const lookup = (domain: string) => Effect.flatMap(TlsrptLookup, (l) => l.lookup(Domain.unsafeMake(domain)))
const txt = (name: string) => Effect.flatMap(Dns, (dns) => dns.txt(name))

// Filler TXT records that push the answer past 512 octets.
const FILLER = Array.from({ length: 5 }, (_, i) => `filler-${i}-${"f".repeat(120)}`)

describe("Dns.layer (live, loopback server)", () => {
  it.scopedLive("joins a record's character-strings", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({
        "_smtp._tls.split.example": [["v=TLSRPTv1; ", "rua=mailto:tls", "rpt@split.example"]]
      })
      yield* Effect.gen(function* () {
        assert.deepStrictEqual(yield* txt("_smtp._tls.split.example."), [
          { text: "v=TLSRPTv1; rua=mailto:tlsrpt@split.example", ttl: 300 }
        ])
        const found = yield* lookup("split.example")
        assert.deepStrictEqual(found.record.ruas, [["mailto:tlsrpt@split.example"]])
      }).pipe(Effect.provide(live(server)))
    })
  )

  it.scopedLive("fetches an answer over 512 octets over TCP after a truncated UDP reply", () =>
    Effect.gen(function* () {
      const long = `v=TLSRPTv1; rua=${Array.from({ length: 12 }, (_, i) => `mailto:r${i}-${"l".repeat(40)}@big.example`).join(",")}`
      const server = yield* DnsServer.make({
        "_smtp._tls.big.example": [...FILLER, VALID],
        "_smtp._tls.long.example": [long]
      })
      yield* Effect.gen(function* () {
        const found = yield* lookup("big.example")
        assert.strictEqual(found.txt, VALID)
        // One record longer than 512 octets, split in 255-octet strings by the server, joined again.
        assert.isTrue(long.length > 512)
        assert.strictEqual((yield* lookup("long.example")).txt, long)
        assert.strictEqual((yield* lookup("long.example")).record.ruas[0]?.length, 12)
      }).pipe(Effect.provide(live(server)))
      const seen = (yield* server.queries).filter((q) => q.name.toLowerCase() === "_smtp._tls.big.example")
      assert.deepStrictEqual(
        seen.map((q) => q.transport),
        ["udp", "tcp"]
      )
    })
  )

  it.scopedLive("NXDOMAIN and NODATA are NoRecords / NoTlsrptRecord", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({
        "_smtp._tls.nx.example": { rcode: "NXDOMAIN" },
        "_smtp._tls.nodata.example": [],
        "other.nodata.example": ["x"]
      })
      yield* Effect.gen(function* () {
        const nx = yield* Effect.flip(txt("_smtp._tls.nx.example."))
        assert.deepStrictEqual([nx._tag, nx.code], ["DnsNoRecords", "ENOTFOUND"])
        const unknown = yield* Effect.flip(txt("_smtp._tls.unknown.example."))
        assert.deepStrictEqual([unknown._tag, unknown.code], ["DnsNoRecords", "ENOTFOUND"])
        const nodata = yield* Effect.flip(txt("_smtp._tls.nodata.example."))
        assert.deepStrictEqual([nodata._tag, nodata.code], ["DnsNoRecords", "ENODATA"])
        for (const d of ["nx.example", "nodata.example", "unknown.example"]) {
          assert.strictEqual((yield* Effect.flip(lookup(d)))._tag, "NoTlsrptRecord", d)
        }
      }).pipe(Effect.provide(live(server)))
    })
  )

  it.scopedLive("SERVFAIL and REFUSED are Temporary", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({
        "_smtp._tls.fail.example": { rcode: "SERVFAIL" },
        "_smtp._tls.refused.example": { rcode: "REFUSED" }
      })
      yield* Effect.gen(function* () {
        const fail = yield* Effect.flip(txt("_smtp._tls.fail.example."))
        assert.deepStrictEqual([fail._tag, fail.code], ["DnsTemporary", "ESERVFAIL"])
        const refused = yield* Effect.flip(txt("_smtp._tls.refused.example."))
        assert.deepStrictEqual([refused._tag, refused.code], ["DnsTemporary", "EREFUSED"])
        const e = yield* Effect.flip(lookup("fail.example"))
        assert.deepStrictEqual([e._tag, e.domain], ["TlsrptTemporaryError", "fail.example"])
      }).pipe(Effect.provide(live(server, { timeoutMs: 300, tries: 1 })))
    })
  )

  it.scopedLive("two TLSRPT records are Multiple; a non-TLSRPT TXT beside a valid one is ignored; syntax errors", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({
        "_smtp._tls.multi.example": [VALID, "v=TLSRPTv1; rua=https://a.example/r"],
        "_smtp._tls.mixed.example": ["v=spf1 -all", VALID, "google-site-verification=abc"],
        "_smtp._tls.bad.example": ["v=TLSRPTv1; rua=http://bad/%"]
      })
      yield* Effect.gen(function* () {
        const multi = yield* Effect.flip(lookup("multi.example"))
        assert.strictEqual(multi._tag, "MultipleTlsrptRecords")
        if (multi._tag === "MultipleTlsrptRecords") assert.strictEqual(multi.records.length, 2)
        assert.strictEqual((yield* lookup("mixed.example")).txt, VALID)
        const bad = yield* Effect.flip(lookup("bad.example"))
        assert.strictEqual(bad._tag, "TlsrptSyntaxError")
        if (bad._tag === "TlsrptSyntaxError") assert.strictEqual(bad.txt, "v=TLSRPTv1; rua=http://bad/%")
      }).pipe(Effect.provide(live(server)))
    })
  )

  it.scopedLive("character-strings are UTF-8 (RFC 8460 §3); invalid UTF-8 in a TLSRPT record is a syntax error", () =>
    Effect.gen(function* () {
      const utf8 = "v=TLSRPTv1; rua=mailto:j\u00f6rg@b\u00fccher.example"
      // "v=TLSRPTv1; rua=mailto:a\xff@x.example": 0xFF never occurs in UTF-8
      const invalid = Buffer.concat([
        Buffer.from("v=TLSRPTv1; rua=mailto:a"),
        Buffer.from([0xff]),
        Buffer.from("@x.example")
      ])
      const server = yield* DnsServer.make({
        "_smtp._tls.utf8.example": [utf8],
        // split inside "ö": the two octets of one character in two character-strings
        "_smtp._tls.split8.example": [
          [Buffer.from("v=TLSRPTv1; rua=mailto:j\u00f6").subarray(0, 25), Buffer.from("\u00f6rg@b.example").subarray(1)]
        ],
        "_smtp._tls.invalid.example": [invalid],
        // a record of other software with invalid UTF-8 is ignored like any non-TLSRPT TXT
        "_smtp._tls.other.example": [Buffer.from([0x78, 0xff]), VALID]
      })
      yield* Effect.gen(function* () {
        assert.deepStrictEqual(yield* txt("_smtp._tls.utf8.example."), [{ text: utf8, ttl: 300 }])
        const found = yield* lookup("utf8.example")
        assert.strictEqual(found.txt, utf8)
        assert.deepStrictEqual(found.record.ruas, [["mailto:j\u00f6rg@b\u00fccher.example"]])
        assert.strictEqual((yield* lookup("split8.example")).txt, "v=TLSRPTv1; rua=mailto:j\u00f6rg@b.example")
        const bad = yield* Effect.flip(lookup("invalid.example"))
        assert.strictEqual(bad._tag, "TlsrptSyntaxError")
        if (bad._tag === "TlsrptSyntaxError") {
          assert.strictEqual(bad.reason, "invalid UTF-8")
          assert.strictEqual(bad.position, "v=TLSRPTv1; rua=mailto:a".length)
        }
        assert.strictEqual((yield* lookup("other.example")).txt, VALID)
      }).pipe(Effect.provide(live(server)))
    })
  )

  it.scopedLive("an IDN policy domain is queried by its A-label", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "_smtp._tls.xn--74h.example": [VALID] })
      const found = yield* lookup("\u263a.example").pipe(Effect.provide(live(server)))
      assert.strictEqual(found.txt, VALID)
      assert.deepStrictEqual(
        (yield* server.queries).map((q) => [q.name.toLowerCase(), q.type]),
        [["_smtp._tls.xn--74h.example", "TXT"]]
      )
    })
  )

  it.scoped("a server that never answers fails as Temporary once timeout × tries have passed on the Clock", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "_smtp._tls.silent.example": { noAnswer: true } })
      // c-ares would wait minutes with these settings; the layer's bound on the Clock ends it.
      const timeoutMs = 60_000
      const tries = 3
      const fiber = yield* Effect.fork(
        Effect.flip(lookup("silent.example").pipe(Effect.provide(live(server, { timeoutMs, tries }))))
      )
      yield* TestClock.adjust(timeoutMs * tries - 1)
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust(1)
      const e = yield* Fiber.join(fiber)
      assert.deepStrictEqual(
        [e._tag, e._tag === "TlsrptTemporaryError" && e.code],
        ["TlsrptTemporaryError", "ETIMEOUT"]
      )
    })
  )

  it.live("a closed port (connection refused) is Temporary", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const server = yield* DnsServer.make().pipe(Scope.extend(scope))
      yield* Scope.close(scope, Exit.void)
      const e = yield* Effect.flip(lookup("a.example").pipe(Effect.provide(live(server, { timeoutMs: 300, tries: 1 }))))
      assert.strictEqual(e._tag, "TlsrptTemporaryError")
    })
  )

  it.scopedLive("interrupting a lookup leaves the other lookups in flight to their answers", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({
        "_smtp._tls.silent.example": { noAnswer: true },
        "_smtp._tls.late.example": { noAnswer: true }
      })
      yield* Effect.gen(function* () {
        const silent = yield* Effect.fork(lookup("silent.example"))
        const late = yield* Effect.fork(lookup("late.example"))
        // Both queries reached the server; one lookup is interrupted, then the other name answers
        // (at c-ares' next try): cancelling the channel would have failed it as ECANCELLED.
        yield* server.queries.pipe(
          Effect.repeat({ until: (q) => q.length >= 2, schedule: Schedule.spaced("5 millis") })
        )
        assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(silent)))
        yield* server.set("_smtp._tls.late.example", [VALID])
        assert.strictEqual((yield* Fiber.join(late)).txt, VALID)
      }).pipe(Effect.provide(live(server, { timeoutMs: 200, tries: 4 })))
    })
  )

  it.scopedLive("a layer's lookups share one resolver: queries in flight leave from one socket", () =>
    Effect.gen(function* () {
      const names = Array.from({ length: 8 }, (_, i) => `d${i}.example`)
      const server = yield* DnsServer.make(Object.fromEntries(names.map((d) => [`_smtp._tls.${d}`, [VALID]])))
      const found = yield* Effect.forEach(names, lookup, { concurrency: "unbounded" }).pipe(
        Effect.provide(live(server))
      )
      assert.deepStrictEqual(
        found.map((f) => f.txt),
        names.map(() => VALID)
      )
      const queries = yield* server.queries
      assert.strictEqual(queries.length, names.length)
      // a resolver per lookup: a socket (and a c-ares channel) each, 8 ports
      assert.strictEqual(new Set(queries.map((q) => q.clientPort)).size, 1)
    })
  )

  it.scopedLive("the resolver keeps no answers: a changed record is seen by the next lookup", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "_smtp._tls.a.example": [VALID] })
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* lookup("a.example")).txt, VALID)
        const other = "v=TLSRPTv1; rua=mailto:other@a.example"
        yield* server.set("_smtp._tls.a.example", [other])
        assert.strictEqual((yield* lookup("a.example")).txt, other)
      }).pipe(Effect.provide(live(server)))
    })
  )

  it.scopedLive("a decoded `dns` config section is handed to Dns.layer whole", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "_smtp._tls.a.example": [VALID] })
      const config = yield* Schema.decodeUnknown(DnsConfig)({ servers: [server.address], timeoutMs: 1000, tries: 1 })
      const port = Number(server.address.split(":")[1])
      assert.deepStrictEqual(config.servers, [{ host: "127.0.0.1", port }])
      const answers = yield* txt("_smtp._tls.a.example").pipe(Effect.provide(Dns.layer(config)))
      assert.deepStrictEqual(
        answers.map((a) => a.text),
        [VALID]
      )
    })
  )

  it("DnsConfig: servers are IP addresses (port 53 by default), timeout and tries bounded", () => {
    const decode = Schema.decodeUnknownEither(DnsConfig)
    assert.deepStrictEqual(Either.getOrThrow(decode({ servers: ["::1", "[::1]:5353", "9.9.9.9"] })).servers, [
      { host: "::1", port: 53 },
      { host: "::1", port: 5353 },
      { host: "9.9.9.9", port: 53 }
    ])
    for (const bad of [
      { servers: ["resolver.example"] },
      { servers: ["1.2.3.4:70000"] },
      { timeoutMs: 0 },
      { timeoutMs: 60_001 },
      { tries: 11 }
    ])
      assert.isTrue(Either.isLeft(decode(bad)), JSON.stringify(bad))
  })

  it.live("invalid server addresses fail the layer with a typed DnsConfigError", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(txt("a.example").pipe(Effect.provide(Dns.layer({ servers: ["not an address"] }))))
      assert.strictEqual(e._tag, "DnsConfigError")
      assert.include(e.message, "not an address")
    })
  )
})
