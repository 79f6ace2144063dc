import { assert, describe, it } from "@effect/vitest"
import { TlsrptRecord } from "@tlsrpt/core"
import { FastCheck as fc } from "effect"
import { Destinations } from "../src/index.js"

// A few spellings of a few destinations, so that repeats (in any spelling) and every kind are common.
const uri = fc.constantFrom(
  "mailto:tlsrpt@a.example",
  "mailto:TLSRPT@A.EXAMPLE",
  "MAILTO:tlsrpt@a.example",
  "mailto:b@a.example",
  "mailto:x@ü.example",
  "mailto:x@xn--tda.example",
  "https://reports.example/tlsrpt",
  "https://REPORTS.example/tlsrpt",
  "https://other.example/",
  "ftp://nope.example/",
  "mailto:not an address"
)
const listed = fc.array(uri, { maxLength: 30 }).map((uris) => uris.map(TlsrptRecord.destination))
const options = fc.record({
  https: fc.boolean(),
  suppressed: fc.subarray(["tlsrpt@a.example", "x@xn--tda.example", "https://reports.example/tlsrpt"])
})

const targetOf = (d: TlsrptRecord.Destination) => (d._tag === "Unsupported" ? d.uri : Destinations.suppressionTarget(d))

describe("Destinations.select (docs/design.md#reporting-destinations)", () => {
  it.prop("one verdict per listed destination, in record order", [listed, options], ([ds, o]) => {
    const s = Destinations.select(ds, { https: o.https, isSuppressed: (t) => o.suppressed.includes(t) })
    assert.deepStrictEqual(
      s.choices.map((c) => c.destination),
      ds
    )
  })

  it.prop(
    "at most MAX_DESTINATIONS usable destinations, repeats included, in record order (docs/design.md#destination-cap)",
    [listed, options],
    ([ds, o]) => {
      const s = Destinations.select(ds, { https: o.https })
      const usable = ds.filter((d) => d._tag === "Mailto" || (o.https && d._tag === "Https"))
      assert.strictEqual(s.usable, usable.length)
      const kept = usable.slice(0, Destinations.MAX_DESTINATIONS)
      assert.deepStrictEqual(
        s.mailto,
        kept.filter((d) => d._tag === "Mailto")
      )
      assert.deepStrictEqual(
        s.https,
        kept.filter((d) => d._tag === "Https")
      )
      assert.strictEqual(s.choices.filter((c) => c.verdict === "capped").length, usable.length - kept.length)
    }
  )

  it.prop(
    "each address (any spelling) or URL gets one message; suppressed and https-off ones get none",
    [listed, options],
    ([ds, o]) => {
      const s = Destinations.select(ds, { https: o.https, isSuppressed: (t) => o.suppressed.includes(t) })
      const targets = [...s.to.map((a) => a.normalized), ...s.urls]
      assert.strictEqual(new Set(targets).size, targets.length)
      assert.isTrue(targets.every((t) => !o.suppressed.includes(t)))
      if (!o.https) assert.deepStrictEqual(s.urls, [])
      // the first spelling of each target among the kept ones, unless suppressed
      const firsts = [...s.mailto, ...s.https]
        .filter((d, i, all) => all.findIndex((e) => targetOf(e) === targetOf(d)) === i)
        .filter((d) => !o.suppressed.includes(targetOf(d)))
      assert.deepStrictEqual(
        s.to,
        firsts.flatMap((d) => (d._tag === "Mailto" ? [d.address] : []))
      )
      assert.deepStrictEqual(
        s.urls,
        firsts.flatMap((d) => (d._tag === "Https" ? [d.url] : []))
      )
      assert.strictEqual(s.choices.filter((c) => c.verdict === "mail" || c.verdict === "post").length, targets.length)
    }
  )

  it("a verdict for every case, as the CLI `lookup` prints it", () => {
    const ds = [
      "mailto:a@x.example",
      "mailto:A@X.EXAMPLE",
      "mailto:s@x.example",
      "https://r.example/",
      "ftp://r.example/",
      ...Array.from({ length: 10 }, (_, i) => `mailto:r${i}@x.example`)
    ].map(TlsrptRecord.destination)
    const s = Destinations.select(ds, { https: true, isSuppressed: (t) => t === "s@x.example" })
    assert.deepStrictEqual(
      s.choices.map((c) => [c.destination.uri, c.verdict]),
      [
        ["mailto:a@x.example", "mail"],
        ["mailto:A@X.EXAMPLE", "duplicate"],
        ["mailto:s@x.example", "suppressed"],
        ["https://r.example/", "post"],
        ["ftp://r.example/", "unsupported"],
        ...Array.from({ length: 10 }, (_, i) => [`mailto:r${i}@x.example`, i < 6 ? "mail" : "capped"])
      ]
    )
    assert.deepStrictEqual(
      s.choices.slice(0, 5).map((c) => Destinations.explain(c, { httpsSetting: "reports.https" })),
      [
        "mail a DKIM-signed report to a@x.example",
        "skip: a@x.example is listed earlier",
        "skip: s@x.example is on the suppression list",
        "POST the gzip report (application/tlsrpt+gzip)",
        'skip: unsupported scheme "ftp"'
      ]
    )
    const off = Destinations.select(ds.slice(3, 4), { https: false })
    assert.deepStrictEqual(
      off.choices.map((c) => Destinations.explain(c, { httpsSetting: "reports.https" })),
      ["skip: https reporting is off (reports.https = false)"]
    )
  })
})
