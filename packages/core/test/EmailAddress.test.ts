import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as EmailAddress from "../src/EmailAddress.js"

const ok = (input: string) =>
  Either.getOrElse(EmailAddress.parse(input), (e) =>
    assert.fail(`expected ${JSON.stringify(input)} to parse: ${e.message}`)
  )

const addressish = fc
  .array(
    fc.constantFrom(
      ..."abcXYZ019.-_+@!#$%&'*/=?^`{|}~\"() <>,;:[]\\".split(""),
      "☺",
      "ß",
      "İ",
      "例",
      "\u0000",
      "\r\n",
      "\u00a0",
      "\u0085",
      "\ud800",
      "😀",
      ".example",
      "@☺.example",
      "xn--",
      "xn--zz"
    ),
    { maxLength: 30 }
  )
  .map((a) => a.join(""))

describe("EmailAddress", () => {
  it("normalises: lower case, A-label domain (docs/design.md#normalised-suppression-addresses)", () => {
    const a = ok("Tls-Reports@☺.Example")
    assert.strictEqual(a.normalized, "tls-reports@xn--74h.example")
    assert.strictEqual(a.localPart, "Tls-Reports")
    assert.strictEqual(a.domain.ascii, "xn--74h.example")
    assert.strictEqual(a.domain.unicode, "☺.example")
    assert.deepStrictEqual(
      EmailAddress.normalize("TLS-REPORTS@XN--74H.EXAMPLE."),
      Either.right("tls-reports@xn--74h.example")
    )
    assert.strictEqual(ok("a.b+tag@mox.example").normalized, "a.b+tag@mox.example")
    assert.strictEqual(ok("üser@☺.example").normalized, "üser@xn--74h.example")
    assert.strictEqual(ok(`${"a".repeat(64)}@mox.example`).localPart.length, 64)
    // lower-casing lengthens İ (2 → 3 octets): the normal form still parses to itself
    const dotted = ok(`${"İ".repeat(21)}@mox.example`)
    assert.deepStrictEqual(EmailAddress.normalize(dotted.normalized), Either.right(dotted.normalized))
  })

  it("rejects", () => {
    for (const s of [
      "",
      "mox.example",
      "@mox.example",
      "a@",
      "a@@mox.example",
      "a b@mox.example",
      " a@mox.example",
      "a@mox.example ",
      "a\r\n@mox.example",
      "a\u0085b@mox.example",
      "a\u00a0b@mox.example",
      "a\u2028b@mox.example",
      "\ud800@mox.example",
      "a..b@mox.example",
      ".a@mox.example",
      "a.@mox.example",
      '"quoted"@mox.example',
      "a(comment)@mox.example",
      "<a@mox.example>",
      "mailto:a@mox.example",
      `${"a".repeat(65)}@mox.example`,
      `${"ü".repeat(33)}@mox.example`,
      `${"İ".repeat(22)}@mox.example`,
      "a@mox example",
      "a@-mox.example",
      "a@xn--zz",
      "a@mox..example",
      "a@[127.0.0.1]"
    ]) {
      const r = EmailAddress.parse(s)
      assert.isTrue(Either.isLeft(r), JSON.stringify(s))
      if (Either.isLeft(r)) {
        assert.strictEqual(r.left._tag, "EmailAddressError")
        assert.strictEqual(r.left.input, s)
      }
    }
  })

  it.prop(
    "never throws: any string gives an address or an EmailAddressError; normal forms are fixed points",
    [fc.oneof(fc.string(), fc.fullUnicodeString(), addressish)],
    ([s]) => {
      const r = EmailAddress.parse(s)
      assert.isTrue(Either.isEither(r))
      if (Either.isLeft(r)) {
        assert.instanceOf(r.left, EmailAddress.EmailAddressError)
        assert.isString(r.left.message)
      } else {
        const n = r.right.normalized
        assert.strictEqual(n, n.toLowerCase())
        assert.isTrue(n.endsWith(`@${r.right.domain.ascii}`))
        assert.deepStrictEqual(EmailAddress.normalize(n), Either.right(n))
      }
    },
    { fastCheck: { numRuns: 10_000 } }
  )
})
