import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as Datagram from "../src/Datagram.js"
import { CTRL_WORDS, DatagramInterner, RingReader, RingWriter, ringSize } from "../src/DatagramRing.js"

const DAY = "2026-01-15" as Day.Day
const validate = Schema.decodeUnknownEither(Datagram.Datagram)

// Valid datagrams, and values close to them: a key dropped, a value of the wrong type, an unknown code.
const valid = Arbitrary.make(Datagram.Datagram)
const wrong = fc.oneof(fc.constant(null), fc.string(), fc.integer({ min: -5, max: 999 }), fc.constant([]), fc.double())
const mutated = fc
  .tuple(
    valid,
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.constantFrom(
          "d",
          "dpv",
          "pr",
          "policies",
          "policy-type",
          "f",
          "t",
          "c",
          "s",
          "failure-details",
          "policy-string"
        ),
        wrong
      ),
      { minLength: 1, maxLength: 3 }
    )
  )
  .map(([d, edits]) => {
    const j = structuredClone(d) as unknown as Record<string, unknown>
    for (const [at, key, value] of edits) {
      if (key === "d" || key === "dpv" || key === "pr" || key === "policies") {
        j[key] = value
        continue
      }
      const policies = j.policies
      if (!Array.isArray(policies) || policies.length === 0) continue
      const p = policies[at % policies.length] as Record<string, unknown>
      if (key !== "c" && key !== "s") p[key] = value
      else {
        const details = p["failure-details"]
        if (Array.isArray(details) && details.length > 0) (details[0] as Record<string, unknown>)[key] = value
      }
    }
    return j
  })

describe("Datagram", () => {
  it.prop("the receive path's check agrees with the Schema", [fc.oneof(valid, mutated)], ([u]) => {
    assert.strictEqual(Datagram.isDatagram(u), Either.isRight(validate(u)))
  })

  it.prop("every policy is one session, failed by f; each failure detail counts one failed session", [valid], ([d]) => {
    const row = Datagram.toRow(d, DAY)
    if (Either.isLeft(row)) return // `d` that is not a domain name: refused as a whole
    assert.strictEqual(row.right.results.length, d.policies.length)
    d.policies.forEach((p, i) => {
      const r = row.right.results[i]!
      assert.strictEqual(r.summary.totalFailureSessionCount, p.f)
      assert.strictEqual(r.summary.totalSuccessfulSessionCount, 1 - p.f)
      assert.strictEqual(r.failureDetails.length, p["failure-details"]?.length ?? 0)
      assert.strictEqual(r.policy.policyDomain, p["policy-domain"] ?? d.d)
      assert.deepStrictEqual(r.policy.policyString, p["policy-string"] ?? [])
    })
  })

  it.prop(
    "through the ring (repeats as numbers, the interner cleared when full), the table gives what decode and toRow give, across days",
    {
      // Few distinct datagrams, repeated; some not valid, some with bytes that are not UTF-8.
      pool: fc.array(
        fc.tuple(fc.oneof(valid, mutated), fc.boolean()).map(([u, latin1]) => {
          const text = JSON.stringify(u)
          // An extra key (never read) holding a byte that is not UTF-8.
          return latin1 && text.startsWith("{") && text.length > 2
            ? Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xe9]), Buffer.from(`",${text.slice(1)}`)])
            : Buffer.from(text)
        }),
        { minLength: 1, maxLength: 6 }
      ),
      picks: fc.array(fc.tuple(fc.nat(), fc.constantFrom("2026-01-15", "2026-01-16")), { minLength: 1, maxLength: 40 })
    },
    ({ pool, picks }) => {
      const init = { ctrl: new SharedArrayBuffer(CTRL_WORDS * 4), ring: new SharedArrayBuffer(ringSize(0)) }
      const writer = new RingWriter(init, new DatagramInterner(3))
      const reader = new RingReader(init)
      const table = Datagram.makeTable()
      for (const [i, day] of picks) {
        const bytes = pool[i % pool.length]!
        writer.buffer.set(bytes, writer.reserve()!)
        writer.commit(bytes.length)
        writer.publish()
        let got: Either.Either<Datagram.Received, Datagram.InvalidDatagram> | undefined
        reader.take(1, {
          datagram: (id, b) => {
            got = table.define(id, b, day as Day.Day)
            return true
          },
          repeat: (id) => {
            got = table.repeat(id, day as Day.Day)
            return true
          },
          forget: table.forget
        })
        if (got === undefined) return assert.fail("nothing taken")
        const want = Either.flatMap(Datagram.decode(bytes), (d) =>
          Either.map(Datagram.toRow(d.datagram, day as Day.Day), (row) => ({ row, ...d }))
        )
        assert.strictEqual(Either.isRight(got), Either.isRight(want))
        if (Either.isRight(got) && Either.isRight(want)) {
          assert.deepStrictEqual(got.right.row, want.right.row)
          assert.strictEqual(got.right.repaired, want.right.repaired)
          assert.strictEqual(got.right.dpv, want.right.datagram.dpv)
          assert.strictEqual(got.right.countMismatch, Datagram.countMismatches(want.right.datagram).length > 0)
        }
        if (Either.isLeft(got) && Either.isLeft(want)) assert.strictEqual(got.left.reason, want.left.reason)
      }
    }
  )

  it("maps every result code to its RFC 8460 name, and refuses an unknown one", () => {
    const names = Object.entries(Datagram.RESULT_CODES).map(([code, name]) => {
      const d = Datagram.decode(
        Buffer.from(`{"d": "x.example","policies":[{"policy-type":2,"failure-details":[{"c":${code}}],"t":1,"f":1}]}`)
      )
      return (
        Either.flatMap(d, (v) => Datagram.toRow(v.datagram, DAY)).pipe(Either.getOrThrow).results[0]!.failureDetails[0]!
          .resultType === name
      )
    })
    assert.isTrue(names.every((x) => x))
    const bad = Datagram.decode(
      Buffer.from('{"d": "x.example","policies":[{"policy-type":2,"failure-details":[{"c":901}],"f":1}]}')
    )
    assert.isTrue(Either.isLeft(bad))
    assert.strictEqual(Either.isLeft(bad) ? bad.left.field : "", "policies[0].failure-details[0].c")
  })

  it("keys by d lower-cased with one trailing dot removed; refuses a d that is not a domain", () => {
    const row = Datagram.toRow({ d: "Mail.Example.COM.", policies: [{ "policy-type": 9, f: 0 }] }, DAY)
    assert.strictEqual(Either.getOrThrow(row).policyDomain.ascii, "mail.example.com")
    assert.strictEqual(Either.getOrThrow(row).results[0]!.policy.policyDomain, "Mail.Example.COM.")
    assert.isTrue(Either.isLeft(Datagram.toRow({ d: "not a domain", policies: [{ "policy-type": 9, f: 0 }] }, DAY)))
  })
})
