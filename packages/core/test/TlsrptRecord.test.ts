import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as TlsrptRecord from "../src/TlsrptRecord.js"

const ok = (txt: string): TlsrptRecord.TlsrptRecord => {
  const r = TlsrptRecord.parse(txt)
  if (Either.isLeft(r)) return assert.fail(`expected ${JSON.stringify(txt)} to parse: ${r.left.message}`)
  return r.right
}

const tagOf = (txt: string): string =>
  Either.match(TlsrptRecord.parse(txt), { onLeft: (e) => e._tag, onRight: () => "ok" })

const syntaxError = (txt: string): TlsrptRecord.RecordSyntaxError => {
  const r = TlsrptRecord.parse(txt)
  if (Either.isRight(r) || r.left._tag !== "RecordSyntaxError") {
    return assert.fail(`expected a syntax error for ${JSON.stringify(txt)}, got ${tagOf(txt)}`)
  }
  return r.left
}

describe("TlsrptRecord.parse (mox's examples, docs/design.md#record-syntax)", () => {
  it("one rua with a trailing semicolon", () => {
    assert.deepStrictEqual(ok("v=TLSRPTv1; rua=mailto:tlsrpt@mox.example;"), {
      version: "TLSRPTv1",
      ruas: [["mailto:tlsrpt@mox.example"]],
      extensions: []
    })
  })

  it("a list of two URIs with spaces and tabs around the comma and trailing spaces", () => {
    assert.deepStrictEqual(ok("v=TLSRPTv1; rua=mailto:a@mox.example , \t\t https://mox.example/tlsrpt  ").ruas, [
      ["mailto:a@mox.example", "https://mox.example/tlsrpt"]
    ])
  })

  it("an extension after rua", () => {
    const r = ok("v=TLSRPTv1; rua=mailto:a@mox.example; ext=yes")
    assert.deepStrictEqual(r.ruas, [["mailto:a@mox.example"]])
    assert.deepStrictEqual(r.extensions, [{ key: "ext", value: "yes" }])
  })

  it("a space before the first semicolon and two rua fields", () => {
    assert.deepStrictEqual(ok("v=TLSRPTv1 ; rua=mailto:x@x.example; rua=mailto:y@x.example").ruas, [
      ["mailto:x@x.example"],
      ["mailto:y@x.example"]
    ])
  })

  it("duplicate URIs and duplicate rua fields are kept", () => {
    assert.deepStrictEqual(ok("v=TLSRPTv1;rua=mailto:x@x.example,mailto:x@x.example;rua=mailto:x@x.example").ruas, [
      ["mailto:x@x.example", "mailto:x@x.example"],
      ["mailto:x@x.example"]
    ])
  })

  for (const txt of [
    "v=TLSRPTv0",
    "v=TLSRPTv10",
    "v=TLSRPTv2",
    "v=TLSRPTv1",
    "",
    "v=spf1 -all",
    " v=TLSRPTv1; rua=mailto:a@b.example",
    "V=TLSRPTv1; rua=mailto:a@b.example",
    "v=tlsrptv1; rua=mailto:a@b.example",
    "v=TLSRPTv1 rua=mailto:a@b.example"
  ]) {
    it(`not TLSRPT: ${JSON.stringify(txt)}`, () => {
      const r = TlsrptRecord.parse(txt)
      assert.isTrue(Either.isLeft(r))
      if (Either.isLeft(r)) {
        assert.strictEqual(r.left._tag, "NotTlsrpt")
        assert.strictEqual(r.left.txt, txt)
      }
    })
  }

  const syntaxErrors: ReadonlyArray<[string, string]> = [
    ["v=TLSRPTv1;", "expected key"],
    ["v=TLSRPTv1; ext=1", "missing rua"],
    ["v=TLSRPTv1; rua=", "expected uri"],
    ["v=TLSRPTv1; rua=noscheme", "missing scheme"],
    ["v=TLSRPTv1; rua=,, ,", "expected uri"],
    ["v=TLSRPTv1; rua=mailto:x@x.example; more=", "expected value"],
    ["v=TLSRPTv1; rua=mailto:x@x.example; a12345678901234567890123456789012=1", 'expected "="'],
    ["v=TLSRPTv1; rua=mailto:x@x.example; 1%=a", 'expected "="'],
    ["v=TLSRPTv1; rua=mailto:x@x.example; test==", "expected value"],
    ["v=TLSRPTv1; rua=mailto:x@x.example;;", "expected key"],
    ["v=TLSRPTv1; rua=mailto:x@x.example other", "leftover chars"],
    ["v=TLSRPTv1; rua=mailto:x@x.example!10m", "leftover chars"],
    ["v=TLSRPTv1; rua=http://bad/%", "invalid URL escape"],
    ["v=TLSRPTv1; rua=:x", "missing protocol scheme"]
  ]
  for (const [txt, reason] of syntaxErrors) {
    it(`syntax error: ${JSON.stringify(txt)}`, () => {
      const e = syntaxError(txt)
      assert.include(e.reason, reason)
      assert.strictEqual(e.txt, txt)
      assert.isTrue(e.position >= 0 && e.position <= txt.length)
    })
  }

  it("positions point at the problem", () => {
    assert.strictEqual(syntaxError("v=TLSRPTv1; rua=mailto:x@x.example other").position, 35)
    assert.strictEqual(syntaxError("v=TLSRPTv1; rua=mailto:a@b.example, http://bad/%").position, 36)
    assert.strictEqual(syntaxError("v=TLSRPTv1;").position, 11)
  })
})

describe("TlsrptRecord.parse (key and URI quirks)", () => {
  it("a 32-character key is accepted; `-` and `.` may start a key, `_` may not", () => {
    const key32 = "a1234567890123456789012345678901"
    assert.deepStrictEqual(ok(`v=TLSRPTv1; rua=mailto:x@x.example; ${key32}=1`).extensions, [
      { key: key32, value: "1" }
    ])
    assert.deepStrictEqual(ok("v=TLSRPTv1; rua=mailto:x@x.example; -a=1; .b=2; c_d=3").extensions, [
      { key: "-a", value: "1" },
      { key: ".b", value: "2" },
      { key: "c_d", value: "3" }
    ])
    syntaxError("v=TLSRPTv1; rua=mailto:x@x.example; _a=1")
  })

  it("`RUA` (upper case) is an extension, so a record with only it lacks rua", () => {
    assert.include(syntaxError("v=TLSRPTv1; RUA=mailto:x@x.example").reason, "missing rua")
  })

  it("one trailing delimiter with whitespace is allowed", () => {
    assert.deepStrictEqual(ok("v=TLSRPTv1; rua=mailto:x@x.example \t; \t").ruas, [["mailto:x@x.example"]])
  })

  it("URIs: any scheme parses, but Go's net/url rules reject bad escapes, hosts and ports", () => {
    for (const uri of [
      "http://example/report",
      "https://u:p%41@example:443/a%20b?x=%zz#f",
      "mailto:a@b.example?subject=%zz",
      "https://[::1]:8443/x",
      "https://[fe80::1%25en0]/x",
      "foo+bar.baz-1:opaque%",
      "https://ex%C3%A4mple/"
    ]) {
      assert.deepStrictEqual(ok(`v=TLSRPTv1; rua=${uri}`).ruas, [[uri]], uri)
    }
    for (const uri of [
      "https://example:port/",
      "https://exa{mple/",
      "https://ex%41mple/",
      "https://[::1/",
      "https://[::1]x/",
      "https://u\u00e9@example/",
      "https://example/#%g0",
      "https://ex\u0001ample/",
      "1http://example/"
    ]) {
      syntaxError(`v=TLSRPTv1; rua=${uri}`)
    }
  })
})

describe("TlsrptRecord.toString (docs/design.md#record-model)", () => {
  it("prints rua lists and extensions in order", () => {
    const record: TlsrptRecord.TlsrptRecord = {
      version: "TLSRPTv1",
      ruas: [["mailto:x@mox.example"]],
      extensions: [
        { key: "more", value: "a" },
        { key: "ext", value: "2" }
      ]
    }
    assert.strictEqual(TlsrptRecord.toString(record), "v=TLSRPTv1; rua=mailto:x@mox.example; more=a; ext=2")
  })

  it("escapes `,` `!` `;` in RUAs and joins a list with commas", () => {
    const record: TlsrptRecord.TlsrptRecord = {
      version: "TLSRPTv1",
      ruas: [["mailto:a,b!c;d@x.example", "https://x.example/r"], ["mailto:y@x.example"]],
      extensions: []
    }
    const txt = TlsrptRecord.toString(record)
    assert.strictEqual(
      txt,
      "v=TLSRPTv1; rua=mailto:a%2Cb%21c%3Bd@x.example,https://x.example/r; rua=mailto:y@x.example"
    )
    assert.deepStrictEqual(ok(txt).ruas, [
      ["mailto:a%2Cb%21c%3Bd@x.example", "https://x.example/r"],
      ["mailto:y@x.example"]
    ])
  })
})

describe("TlsrptRecord.destinations", () => {
  const dests = (txt: string) => TlsrptRecord.destinations(ok(txt))

  it("flattens every rua list in record order, keeping duplicates", () => {
    const d = dests(
      "v=TLSRPTv1; rua=mailto:a@x.example,https://x.example/tlsrpt; rua=mailto:a@x.example; rua=http://x.example/"
    )
    assert.deepStrictEqual(
      d.map((x) => [x._tag, x.uri]),
      [
        ["Mailto", "mailto:a@x.example"],
        ["Https", "https://x.example/tlsrpt"],
        ["Mailto", "mailto:a@x.example"],
        ["Unsupported", "http://x.example/"]
      ]
    )
  })

  it("mailto: decodes %2C %21 %3B (any case), drops ?query, compares the scheme case-insensitively", () => {
    const d = dests(
      "v=TLSRPTv1; rua=MailTo:Tls%21rpt@Example.COM?subject=x,mailto:a%2cb@x.example,mailto:a%3Bb@x.example,mailto:a%41@x.example"
    )
    const [first, comma, semicolon, other] = d
    assert.strictEqual(first?._tag, "Mailto")
    if (first?._tag === "Mailto") {
      assert.strictEqual(first.address.localPart, "Tls!rpt")
      assert.strictEqual(first.address.domain.ascii, "example.com")
      assert.strictEqual(first.address.normalized, "tls!rpt@example.com")
    }
    // Decoded, `,` and `;` are not allowed in a dot-atom local part; undecoded `%2c` would be.
    for (const x of [comma, semicolon]) {
      assert.strictEqual(x?._tag, "Unsupported")
      if (x?._tag === "Unsupported") assert.include(x.reason, "invalid mailto address")
    }
    // Other escapes are left as written.
    assert.strictEqual(other?._tag === "Mailto" ? other.address.localPart : other?._tag, "a%41")
  })

  it("mailto: as mox's parser (Go url.Parse, opaque part): mailto:// and mailto:/ are skipped", () => {
    for (const uri of ["mailto://x@y.example", "mailto:/x@y.example", "MAILTO://tlsrpt@y.example?subject=r"]) {
      const d = TlsrptRecord.destination(uri)
      assert.strictEqual(d._tag, "Unsupported", uri)
      if (d._tag === "Unsupported") assert.include(d.reason, "not an opaque mailto URI", uri)
    }
  })

  it("mailto: ?parameters and #fragments are dropped; several addresses in one URI are skipped", () => {
    const address = (uri: string) => {
      const d = TlsrptRecord.destination(uri)
      return d._tag === "Mailto" ? d.address.mailbox : d._tag
    }
    assert.strictEqual(address("mailto:r@y.example?subject=tlsrpt&body=x"), "r@y.example")
    assert.strictEqual(address("mailto:r@y.example#frag"), "r@y.example")
    assert.strictEqual(address("mailto:r@y.example?x=1#frag"), "r@y.example")
    // RFC 6068 allows `to` lists; in a rua the comma is escaped, and mox's address parser refuses the
    // result (its domain would be `y.example%2Cs@z.example`): we skip it as well.
    assert.strictEqual(address("mailto:r@y.example%2Cs@z.example"), "Unsupported")
    assert.strictEqual(address("mailto:?to=r@y.example"), "Unsupported")
    // `%` is atext and other escapes are not decoded, as mox does.
    assert.strictEqual(address("mailto:r%40x@y.example"), "r%40x@y.example")
  })

  it("mailto: an IDN domain is normalised to its A-label", () => {
    const [d] = dests("v=TLSRPTv1; rua=mailto:tlsrpt@\u263a.example")
    assert.strictEqual(d?._tag, "Mailto")
    if (d?._tag === "Mailto") assert.strictEqual(d.address.normalized, "tlsrpt@xn--74h.example")
  })

  it("mailto: invalid or empty addresses are Unsupported with the reason", () => {
    for (const uri of ["mailto:", "mailto:nobody", "mailto:@x.example", "mailto:a@-x.example"]) {
      const [d] = dests(`v=TLSRPTv1; rua=${uri}`)
      assert.strictEqual(d?._tag, "Unsupported", uri)
      if (d?._tag === "Unsupported") assert.include(d.reason, "invalid mailto address", uri)
    }
  })

  it("https: a valid URL with scheme https (any case) gives its normalised form", () => {
    const [a, b] = dests("v=TLSRPTv1; rua=HTTPS://Reports.Example/tlsrpt?x=1,https://[::1]:8443/r")
    assert.deepStrictEqual(a, {
      _tag: "Https",
      uri: "HTTPS://Reports.Example/tlsrpt?x=1",
      url: "https://reports.example/tlsrpt?x=1"
    })
    assert.deepStrictEqual(b, { _tag: "Https", uri: "https://[::1]:8443/r", url: "https://[::1]:8443/r" })
  })

  it("https: a URL that WHATWG rejects is Unsupported", () => {
    const [d] = dests("v=TLSRPTv1; rua=https://a<b.example/")
    assert.strictEqual(d?._tag, "Unsupported")
  })

  it("other schemes are Unsupported, kept for logs", () => {
    assert.deepStrictEqual(TlsrptRecord.destination("http://x.example/r"), {
      _tag: "Unsupported",
      uri: "http://x.example/r",
      reason: 'unsupported scheme "http"'
    })
    assert.strictEqual(TlsrptRecord.destination("ftp://x.example/")._tag, "Unsupported")
  })
})

describe("TlsrptRecord properties", () => {
  const check = (s: string) => {
    const r = TlsrptRecord.parse(s)
    if (Either.isRight(r)) {
      // A parsed record prints back to text that parses to the same record.
      assert.deepStrictEqual(TlsrptRecord.parse(TlsrptRecord.toString(r.right)), Either.right(r.right))
      for (const d of TlsrptRecord.destinations(r.right)) assert.include(["Mailto", "Https", "Unsupported"], d._tag)
    } else {
      assert.include(["NotTlsrpt", "RecordSyntaxError"], r.left._tag)
      if (!s.startsWith("v=TLSRPTv1")) assert.strictEqual(r.left._tag, "NotTlsrpt")
    }
  }

  it.prop(
    "any string gives a typed result, never a throw",
    [fc.string({ unit: "binary", maxLength: 200 })],
    ([s]) => check(s),
    { fastCheck: { numRuns: 10_000 } }
  )

  it.prop(
    "`v=TLSRPTv1;` followed by printable text gives a typed result",
    [fc.string({ maxLength: 200 })],
    ([s]) => {
      const txt = `v=TLSRPTv1;${s}`
      check(txt)
      assert.notStrictEqual(tagOf(txt), "NotTlsrpt")
    },
    { fastCheck: { numRuns: 10_000 } }
  )

  const token = fc.constantFrom(
    "rua=",
    "mailto:",
    "https://",
    "a@b.example",
    "x.example/r",
    "ext=",
    "v",
    ",",
    ";",
    " ",
    "\t",
    "%",
    "%2C",
    "!",
    "=",
    "[",
    "]",
    ":",
    "@",
    "#",
    "?",
    "/"
  )
  it.prop(
    "records assembled from record tokens give a typed result and round-trip when valid",
    [fc.array(token, { maxLength: 30 })],
    ([tokens]) => check(`v=TLSRPTv1; ${tokens.join("")}`),
    { fastCheck: { numRuns: 10_000 } }
  )
})
