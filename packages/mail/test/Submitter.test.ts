import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { fromAddress, makeSubmitter, type SubmitterError } from "../src/Submitter.js"

const left = (e: Either.Either<unknown, SubmitterError>): SubmitterError => {
  if (Either.isRight(e)) return assert.fail("expected a SubmitterError")
  return e.left
}

describe("makeSubmitter", () => {
  it("defaults organization-name, contact-info and From from the domain (docs/design.md#report-header)", () => {
    const s = Either.getOrThrow(makeSubmitter({ domain: "Mox.Example." }))
    assert.strictEqual(s.domain.ascii, "mox.example")
    assert.strictEqual(s.organizationName, "mox.example")
    assert.strictEqual(s.contactInfo, "postmaster@mox.example")
    assert.strictEqual(fromAddress(s), "postmaster@mox.example")
  })

  it("uses the A-label of an IDN submitter everywhere", () => {
    const s = Either.getOrThrow(makeSubmitter({ domain: "☺.example" }))
    assert.strictEqual(s.organizationName, "xn--74h.example")
    assert.strictEqual(s.contactInfo, "postmaster@xn--74h.example")
    assert.strictEqual(fromAddress(s), "postmaster@xn--74h.example")
  })

  it("keeps explicit values", () => {
    const s = Either.getOrThrow(
      makeSubmitter({
        domain: "mox.example",
        organizationName: "Mox Example Ltd",
        contactInfo: "mailto:tls@mox.example",
        from: "reports@mail.mox.example"
      })
    )
    assert.strictEqual(s.organizationName, "Mox Example Ltd")
    assert.strictEqual(s.contactInfo, "mailto:tls@mox.example")
    assert.strictEqual(fromAddress(s), "reports@mail.mox.example")
  })

  it("accepts a URL as contact-info (RFC 8460 §4.4)", () => {
    const s = Either.getOrThrow(makeSubmitter({ domain: "mox.example", contactInfo: "https://www.mox.example/tls" }))
    assert.strictEqual(s.contactInfo, "https://www.mox.example/tls")
  })

  it("refuses a contact address in another domain (docs/design.md#submitter-identity)", () => {
    for (const contactInfo of ["tls@other.example", "mailto:tls@other.example", "tls@sub.mox.example"]) {
      const e = left(makeSubmitter({ domain: "mox.example", contactInfo }))
      assert.strictEqual(e.field, "contactInfo")
      assert.strictEqual(e.value, contactInfo)
      assert.include(e.reason, "differs")
    }
  })

  it("refuses an invalid domain, empty texts, line breaks and a misaligned From", () => {
    assert.strictEqual(left(makeSubmitter({ domain: "bad domain" })).field, "domain")
    assert.strictEqual(left(makeSubmitter({ domain: "mox.example", organizationName: "  " })).field, "organizationName")
    assert.strictEqual(
      left(makeSubmitter({ domain: "mox.example", organizationName: "Mox\r\nBcc: x@y.example" })).reason,
      "control character"
    )
    assert.strictEqual(left(makeSubmitter({ domain: "mox.example", contactInfo: "" })).field, "contactInfo")
    assert.strictEqual(left(makeSubmitter({ domain: "mox.example", contactInfo: "x@" })).field, "contactInfo")
    const from = left(makeSubmitter({ domain: "mox.example", from: "postmaster@other.example" }))
    assert.strictEqual(from.field, "from")
    assert.include(from.reason, "does not align")
    assert.strictEqual(left(makeSubmitter({ domain: "mox.example", from: "pöstmaster@mox.example" })).field, "from")
    // A domain that merely ends in the submitter's name is not below it.
    assert.strictEqual(left(makeSubmitter({ domain: "mox.example", from: "a@evilmox.example" })).field, "from")
  })
})
