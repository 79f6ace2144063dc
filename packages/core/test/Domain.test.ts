import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as Domain from "../src/Domain.js"

const ok = (input: string): Domain.Domain =>
  Either.getOrElse(Domain.parse(input), (e) => assert.fail(`expected ${JSON.stringify(input)} to parse: ${e.message}`))

const reasonOf = (input: string): Domain.DomainErrorReason | "ok" =>
  Either.match(Domain.parse(input), { onLeft: (e) => e.reason, onRight: () => "ok" })

/** Characters domains are made of, plus the ones that commonly break them. */
const domainish = fc.constantFrom(
  ..."abcxyzABCXYZ0189-_.".split(""),
  "xn--",
  "xn--74h",
  "xn--zz",
  "☺",
  "ß",
  "Ä",
  "ж",
  "例",
  "İ",
  "\u00ad",
  "\u200d",
  "。",
  "．",
  "ｆ",
  "Ⅻ",
  "@",
  " ",
  "\t",
  "\r\n",
  "\u0000",
  "\u0085",
  "%",
  "%41",
  "/",
  "?",
  "#",
  ":",
  "[",
  "]",
  "*",
  "\\",
  "\ud800",
  "😀"
)
const domainishString = fc.array(domainish, { maxLength: 40 }).map((a) => a.join(""))
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/)
const unicodeLabel = fc.array(fc.constantFrom("☺", "ß", "ä", "ж", "例", "a", "b", "1"), { minLength: 1, maxLength: 10 })
const plausible = fc
  .array(
    fc.oneof(
      label,
      unicodeLabel.map((a) => a.join(""))
    ),
    { minLength: 1, maxLength: 5 }
  )
  .chain((labels) =>
    fc.constantFrom(labels.join("."), `${labels.join(".").toUpperCase()}.`, `${labels.join(".")}.example`)
  )

const anyString = fc.oneof(fc.string(), fc.fullUnicodeString(), domainishString, plausible)

/** What every successfully parsed domain satisfies. */
const assertNormalForm = (d: Domain.Domain) => {
  assert.match(d.ascii, /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/)
  assert.isAtMost(d.ascii.length, 253)
  for (const l of d.ascii.split(".")) {
    assert.isAtMost(l.length, 63)
    assert.isFalse(l.startsWith("-") || l.endsWith("-"), d.ascii)
  }
  assert.strictEqual(typeof d.unicode, "string")
}

describe("Domain.parse", () => {
  it("lower-cases and drops one trailing dot", () => {
    assert.strictEqual(ok("MOX.Example").ascii, "mox.example")
    assert.strictEqual(ok("mox.example.").ascii, "mox.example")
    assert.strictEqual(ok("_smtp._TLS.Mox.Example.").ascii, "_smtp._tls.mox.example")
    assert.strictEqual(reasonOf("mox.example.."), "empty-label")
    assert.strictEqual(reasonOf("."), "empty")
    assert.strictEqual(reasonOf(".mox.example"), "empty-label")
    assert.strictEqual(reasonOf("mox..example"), "empty-label")
  })

  it("keeps the A-label and the U-label form", () => {
    const u = ok("☺.example")
    assert.deepStrictEqual([u.ascii, u.unicode], ["xn--74h.example", "☺.example"])
    const a = ok("xn--74h.example")
    assert.deepStrictEqual([a.ascii, a.unicode], ["xn--74h.example", "☺.example"])
    assert.isTrue(Domain.equals(u, a))
    assert.strictEqual(ok("XN--74H.EXAMPLE.").unicode, "☺.example")
    assert.strictEqual(ok("mailhost.☺.example").ascii, "mailhost.xn--74h.example")
    assert.deepStrictEqual([ok("ß.de").ascii, ok("xn--zca.de").unicode], ["xn--zca.de", "ß.de"])
    // UTS #46 mapping: full-width letters and the ideographic full stop
    assert.strictEqual(ok("ｍｏｘ。example").ascii, "mox.example")
  })

  it("log strings (docs/design.md#message-composition)", () => {
    assert.strictEqual(Domain.toLogString(ok("mox.example")), "mox.example")
    assert.strictEqual(Domain.toLogString(ok("☺.example")), "☺.example/xn--74h.example")
  })

  it("rejects empty input and over-long labels and names", () => {
    assert.strictEqual(reasonOf(""), "empty")
    assert.strictEqual(ok(`${"a".repeat(63)}.example`).ascii.length, 71)
    assert.strictEqual(reasonOf(`${"a".repeat(64)}.example`), "label-too-long")
    // an IDNA label whose A-label form passes 63 octets
    // (61 characters, 70 as `xn--…-i849b`)
    assert.strictEqual(
      reasonOf(`${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(2).slice(0, 60)}☺.example`),
      "label-too-long"
    )
    const l63 = "a".repeat(63)
    const name253 = [l63, l63, l63, "a".repeat(61)].join(".")
    assert.strictEqual(name253.length, 253)
    assert.strictEqual(ok(name253).ascii, name253)
    assert.strictEqual(ok(`${name253}.`).ascii, name253)
    assert.strictEqual(reasonOf(`${name253}a`), "too-long")
    assert.strictEqual(reasonOf("a.".repeat(1000)), "too-long")
  })

  it("rejects spaces, CR/LF and other control characters", () => {
    assert.strictEqual(reasonOf("mox example"), "space")
    assert.strictEqual(reasonOf(" mox.example"), "space")
    assert.strictEqual(reasonOf("mox.example\u00a0"), "space")
    assert.strictEqual(reasonOf("mox.example\u2028"), "space")
    for (const c of ["\r", "\n", "\r\n", "\t", "\u0000", "\u001b", "\u007f", "\u0085", "\u009f"]) {
      assert.strictEqual(reasonOf(`mox${c}example`), "control-character", JSON.stringify(c))
    }
  })

  it("rejects @, URL syntax and percent-encoding", () => {
    assert.strictEqual(reasonOf("postmaster@mox.example"), "at-sign")
    for (const s of [
      "ex%61mple.com",
      "a%2eb",
      "a/b",
      "a?b",
      "a#b",
      "a:25",
      "[::1]",
      "a\\b",
      "*.example",
      "a,b",
      "a!b"
    ]) {
      assert.strictEqual(reasonOf(s), "invalid-character", s)
    }
  })

  it("rejects invalid punycode and other IDNA errors", () => {
    assert.strictEqual(reasonOf("xn--zz"), "invalid-idna")
    assert.strictEqual(reasonOf("xn--zz.example"), "invalid-idna")
    assert.strictEqual(reasonOf("xn--a.example"), "invalid-idna")
    // a lone joiner is invalid in context (UTS #46 CheckJoiners)
    assert.strictEqual(reasonOf("a\u200db.example"), "invalid-idna")
    assert.strictEqual(reasonOf("\ud800.example"), "invalid-idna")
  })

  it("rejects hyphens at label edges and a numeric last label (an IPv4 address)", () => {
    assert.strictEqual(reasonOf("-mox.example"), "hyphen-at-label-edge")
    assert.strictEqual(reasonOf("mox-.example"), "hyphen-at-label-edge")
    assert.strictEqual(reasonOf("1.2.3.4"), "numeric-tld")
    // WHATWG reads a name ending in a number as IPv4, and `mox.123` is no IPv4 address
    assert.strictEqual(reasonOf("mox.123"), "invalid-idna")
    assert.strictEqual(reasonOf("127.1"), "numeric-tld")
    assert.strictEqual(ok("123.example").ascii, "123.example")
  })

  it("FromString schema: decodes any spelling, encodes the A-label", () => {
    const d = Schema.decodeUnknownSync(Domain.FromString)("☺.Example.")
    assert.strictEqual(d.ascii, "xn--74h.example")
    assert.strictEqual(Schema.encodeSync(Domain.FromString)(d), "xn--74h.example")
    assert.isTrue(Either.isLeft(Schema.decodeUnknownEither(Domain.FromString)("a b")))
    assert.isTrue(Either.isLeft(Schema.decodeUnknownEither(Domain.FromString)(42)))
  })

  it("unsafeMake throws on invalid input", () => {
    assert.strictEqual(Domain.unsafeMake("Mox.Example").ascii, "mox.example")
    assert.throws(() => Domain.unsafeMake("xn--zz"), /invalid-idna/)
  })

  it.prop(
    "never throws: any string gives a Domain in normal form or a DomainError",
    [anyString],
    ([s]) => {
      const r = Domain.parse(s)
      assert.isTrue(Either.isEither(r))
      if (Either.isLeft(r)) {
        assert.instanceOf(r.left, Domain.DomainError)
        assert.strictEqual(r.left._tag, "DomainError")
        assert.strictEqual(r.left.input, s)
        assert.isString(r.left.message)
      } else assertNormalForm(r.right)
    },
    { fastCheck: { numRuns: 10_000 } }
  )

  it.prop(
    "parse(parse(x).ascii) and parse(parse(x).unicode) give the same domain",
    [fc.oneof(plausible, domainishString)],
    ([s]) => {
      const r = Domain.parse(s)
      if (Either.isLeft(r)) return
      assert.deepStrictEqual(Domain.parse(r.right.ascii), Either.right(r.right))
      assert.deepStrictEqual(Domain.parse(r.right.unicode), Either.right(r.right))
    },
    { fastCheck: { numRuns: 10_000 } }
  )
})
