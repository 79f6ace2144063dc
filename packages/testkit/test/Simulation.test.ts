import { assert, describe, it } from "@effect/vitest"
import { withoutDkimSignature } from "@tlsrpt/testkit/simulation"
import { FastCheck } from "effect"

const bytes = (s: string) => Buffer.from(s, "latin1")

describe("withoutDkimSignature", () => {
  it("drops the field with its folded lines, keeps every other byte", () => {
    const raw =
      "From: a@sender.example\r\nDKIM-Signature: v=1; a=rsa-sha256;\r\n\td=sender.example; s=x;\r\n b=abc\r\nSubject: s\r\n\r\nbody\r\nDKIM-Signature: in the body stays\r\n"
    assert.strictEqual(
      withoutDkimSignature(bytes(raw)),
      "From: a@sender.example\r\nSubject: s\r\n\r\nbody\r\nDKIM-Signature: in the body stays\r\n"
    )
  })

  it.prop(
    "a message without the field comes back unchanged",
    [FastCheck.array(FastCheck.constantFrom("From: x\r\n", "X-Y: 1\r\n", " folded\r\n", "\r\n", "body\u00e9\r\n"))],
    ([parts]) => {
      const raw = parts.join("")
      assert.strictEqual(withoutDkimSignature(bytes(raw)), raw)
    }
  )
})
