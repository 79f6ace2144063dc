import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck, Ref } from "effect"
import { Dns, decodeTxt, type TestAnswer } from "../src/Dns.js"

const txt = (name: string) => Effect.flatMap(Dns, (dns) => dns.txt(name))

describe("Dns.layerTest", () => {
  const layer = Dns.layerTest({
    "_smtp._tls.A.Example": ["v=TLSRPTv1; rua=mailto:a@a.example", "other"],
    "ttl.example.": { records: ["x"], ttl: 42 },
    "empty.example": [],
    "nx.example": { error: "nxdomain" },
    "nodata.example": { error: "nodata" },
    "fail.example": { error: "servfail" },
    "slow.example": { error: "timeout" }
  })

  it.effect("answers case-insensitively, with or without the final dot, in order, default TTL 300", () =>
    Effect.gen(function* () {
      for (const name of ["_smtp._tls.a.example", "_SMTP._TLS.A.EXAMPLE.", "_smtp._tls.a.example."]) {
        assert.deepStrictEqual(yield* txt(name), [
          { text: "v=TLSRPTv1; rua=mailto:a@a.example", ttl: 300 },
          { text: "other", ttl: 300 }
        ])
      }
      assert.deepStrictEqual(yield* txt("ttl.example"), [{ text: "x", ttl: 42 }])
    }).pipe(Effect.provide(layer))
  )

  it.effect("maps scripted failures to NoRecords and Temporary with node's codes", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[string, string, string]> = [
        ["unlisted.example", "DnsNoRecords", "ENOTFOUND"],
        ["nx.example", "DnsNoRecords", "ENOTFOUND"],
        ["nodata.example", "DnsNoRecords", "ENODATA"],
        ["empty.example", "DnsNoRecords", "ENODATA"],
        ["fail.example", "DnsTemporary", "ESERVFAIL"],
        ["slow.example.", "DnsTemporary", "ETIMEOUT"]
      ]
      for (const [name, tag, code] of cases) {
        const e = yield* Effect.flip(txt(name))
        assert.strictEqual(e._tag, tag, name)
        assert.strictEqual(e.code, code, name)
        assert.strictEqual(e.name, name)
      }
    }).pipe(Effect.provide(layer))
  )
})

describe("Dns.layerTestRef", () => {
  it.effect("reads the Ref at every query, so DNS can change between scenarios", () =>
    Effect.gen(function* () {
      const ref = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(new Map([["x.example", ["one"]]]))
      const run = txt("X.example.").pipe(Effect.provide(Dns.layerTestRef(ref)))
      assert.deepStrictEqual(yield* run, [{ text: "one", ttl: 300 }])
      yield* Ref.set(ref, new Map([["x.example", { error: "servfail" }]]))
      assert.strictEqual((yield* Effect.flip(run))._tag, "DnsTemporary")
      yield* Ref.set(ref, new Map())
      assert.strictEqual((yield* Effect.flip(run))._tag, "DnsNoRecords")
    })
  )
})

describe("decodeTxt", () => {
  // Node hands each octet of a character-string over as one Latin-1 code unit.
  const asNode = (octets: Buffer, cuts: ReadonlyArray<number>): Array<string> => {
    const points = [...new Set(cuts.map((c) => c % (octets.length + 1)))].sort((a, b) => a - b)
    const bounds = [0, ...points, octets.length]
    return bounds.slice(1).map((end, i) => octets.subarray(bounds[i], end).toString("latin1"))
  }

  it.prop(
    "any text, its UTF-8 octets cut anywhere into character-strings, decodes to itself",
    { text: FastCheck.string({ unit: "grapheme" }), cuts: FastCheck.array(FastCheck.nat(), { maxLength: 4 }) },
    ({ text, cuts }) => {
      const decoded = decodeTxt(asNode(Buffer.from(text, "utf8"), cuts), 60)
      assert.deepStrictEqual(decoded, { text, ttl: 60 })
    }
  )

  it.prop(
    "octets with a byte that never occurs in UTF-8 are flagged at its offset",
    { before: FastCheck.string({ unit: "grapheme-ascii" }), bad: FastCheck.constantFrom(0xc0, 0xc1, 0xf5, 0xff) },
    ({ before, bad }) => {
      const decoded = decodeTxt([Buffer.concat([Buffer.from(before), Buffer.from([bad])]).toString("latin1")], 60)
      assert.strictEqual(decoded.invalidUtf8At, before.length)
    }
  )
})
