import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as SuppressionTarget from "../src/SuppressionTarget.js"
import * as TlsrptRecord from "../src/TlsrptRecord.js"

const ok = (s: string) => Either.getOrThrow(SuppressionTarget.normalize(s))

describe("SuppressionTarget (docs/design.md#suppression)", () => {
  it("mail addresses: lower case, A-label domain; a mailto: prefix is dropped", () => {
    assert.strictEqual(ok("TLS-Reports@\u263a.Example"), "tls-reports@xn--74h.example")
    assert.strictEqual(ok("mailto:TLS-Reports@xn--74h.example"), "tls-reports@xn--74h.example")
  })

  it("https URIs: WHATWG form, so every spelling of one endpoint is one entry", () => {
    for (const s of [
      "https://reports.example/tlsrpt",
      "HTTPS://Reports.Example/tlsrpt",
      "https://reports.example:443/tlsrpt",
      " https://REPORTS.example/tlsrpt "
    ]) {
      assert.strictEqual(ok(s), "https://reports.example/tlsrpt", s)
    }
    assert.strictEqual(ok("https://\u263a.example/r?a=1"), "https://xn--74h.example/r?a=1")
  })

  it("a suppressed https URI matches the destination the reporter derives from the record", () => {
    const d = TlsrptRecord.destination("HTTPS://Reports.Example:443/tlsrpt")
    assert.strictEqual(d._tag, "Https")
    if (d._tag === "Https") assert.strictEqual(d.url, ok("https://reports.example/tlsrpt"))
  })

  it("refuses what is neither", () => {
    for (const s of ["http://reports.example/", "https://", "nobody", "ftp://x.example/", ""]) {
      assert.isTrue(Either.isLeft(SuppressionTarget.normalize(s)), s)
    }
  })
})
