import { Buffer } from "node:buffer"
import { createGzip } from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Report from "../src/Report.js"
import * as ReportMessage from "../src/ReportMessage.js"
import {
  gzip,
  multipart,
  type Part,
  reportMail,
  seedReportJson,
  seedReports,
  singlePart,
  textPart,
  type Tree
} from "./fixtures.js"

const report1 = Either.getOrThrow(Report.fromJson(seedReports.report1))
const report1Json = seedReportJson("report1")

const reason = <A>(effect: Effect.Effect<A, ReportMessage.ReportMessageError>) =>
  Effect.map(Effect.flip(effect), (e) => e.reason)

const gzipPart = (body: Buffer | string): Part => ({ contentType: "application/tlsrpt+gzip", body })
const jsonPart = (body: string): Part => ({ contentType: "application/tlsrpt+json", body })
const report = (parts: ReadonlyArray<Tree>, reportType = "tlsrpt") =>
  multipart(`multipart/report; report-type=${reportType}`, parts)

/** Gzip of `size` zero bytes, compressed in 1 MiB steps so the input never sits in memory. */
const zeroBomb = (size: number, prefix = ""): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const gz = createGzip({ level: 9 })
    const out: Array<Buffer> = []
    gz.on("data", (b: Buffer) => out.push(b))
    gz.on("end", () => resolve(Buffer.concat(out)))
    gz.on("error", reject)
    const zeros = Buffer.alloc(1024 * 1024)
    let left = size
    gz.write(prefix)
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, zeros.length)
        left -= n
        if (!gz.write(n === zeros.length ? zeros : zeros.subarray(0, n))) return gz.once("drain", pump)
      }
      gz.end()
    }
    pump()
  })

/** A report JSON text padded with spaces to exactly `size` bytes. */
const paddedJson = (size: number): string => report1Json + " ".repeat(size - Buffer.byteLength(report1Json))

describe("ReportMessage.parse (docs/design.md#report-parsing)", () => {
  it.effect("multipart/report; report-type=tlsrpt with a gzip attachment", () =>
    Effect.gen(function* () {
      const mail = yield* Effect.promise(() => reportMail(report1Json))
      assert.match(mail.toString("latin1"), /Content-Type: multipart\/report; report-type=/)
      assert.deepStrictEqual(yield* ReportMessage.parse(mail), report1)
      // the same message as a string
      assert.deepStrictEqual(yield* ReportMessage.parse(mail.toString("utf8")), report1)
    })
  )

  it.effect("a literal mox-style message: CRLF, quoted parameters, quoted-printable text part", () =>
    Effect.gen(function* () {
      const b64 = gzip(report1Json).toString("base64").replace(/.{76}/g, "$&\r\n")
      const mail = [
        "From: <postmaster@mox.example>",
        "To: <tls-reports@xn--74h.example>",
        "Subject: Report Domain: xn--74h.example Submitter: mox.example",
        " Report-ID: <20240109.xn--74h.example@mox.example>",
        "TLS-Report-Domain: xn--74h.example",
        "TLS-Report-Submitter: mox.example",
        "TLS-Required: No",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type="tlsrpt"; boundary="b1b2"',
        "",
        "--b1b2",
        "Content-Transfer-Encoding: quoted-printable",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Policy Domain: =E2=98=BA.example/xn--74h.example",
        "--b1b2",
        "Content-Disposition: attachment; filename=mox.example!xn--74h.example!1704758400!1704844799.json.gz",
        "Content-Transfer-Encoding: base64",
        "Content-Type: application/tlsrpt+gzip; name=mox.example!xn--74h.example!1704758400!1704844799.json.gz",
        "",
        b64,
        "--b1b2--",
        ""
      ].join("\r\n")
      assert.deepStrictEqual(yield* ReportMessage.parse(new TextEncoder().encode(mail)), report1)
    })
  )

  it.effect("multipart/report with an application/tlsrpt+json child, quoted-printable", () =>
    Effect.gen(function* () {
      const mail = yield* Effect.promise(() => report([textPart, jsonPart(report1Json)]))
      assert.deepStrictEqual(yield* ReportMessage.parse(mail), report1)
    })
  )

  it.effect("a whole message that is application/tlsrpt+gzip, or +json", () =>
    Effect.gen(function* () {
      const gz = yield* Effect.promise(() => singlePart(gzipPart(gzip(report1Json))))
      assert.deepStrictEqual(yield* ReportMessage.parse(gz), report1)
      const json = yield* Effect.promise(() => singlePart(jsonPart(report1Json)))
      assert.deepStrictEqual(yield* ReportMessage.parse(json), report1)
    })
  )

  it.effect("media types and the report-type value are matched case-insensitively", () =>
    Effect.gen(function* () {
      const mail = yield* Effect.promise(() =>
        multipart('Multipart/Report; Report-Type="TLSRPT"', [
          { contentType: "Application/TLSRPT+GZIP", body: gzip(report1Json) }
        ])
      )
      assert.deepStrictEqual(yield* ReportMessage.parse(mail), report1)
    })
  )

  it.effect("plain JSON inside a +gzip part is accepted (docs/design.md#conservative-json)", () =>
    Effect.gen(function* () {
      const mail = yield* Effect.promise(() => report([textPart, gzipPart(`\uFEFF\n  ${report1Json}`)]))
      assert.deepStrictEqual(yield* ReportMessage.parse(mail), report1)
    })
  )

  it.effect("data after the first JSON value is ignored (docs/design.md#report-parsing)", () =>
    Effect.gen(function* () {
      const mail = yield* Effect.promise(() => report([gzipPart(gzip(`${report1Json}\n{"trailing": "x"} junk`))]))
      assert.deepStrictEqual(yield* ReportMessage.parse(mail), report1)
    })
  )

  it.effect("the first report in document order wins; later parts are not looked at", () =>
    Effect.gen(function* () {
      const other = seedReportJson("report2")
      const mail = yield* Effect.promise(() => report([textPart, jsonPart(report1Json), gzipPart(gzip(other))]))
      assert.deepStrictEqual(yield* ReportMessage.parse(mail), report1)
      const broken = yield* Effect.promise(() => report([gzipPart(Buffer.from([0x1f, 0x8b, 0, 1])), jsonPart(other)]))
      assert.strictEqual(yield* reason(ReportMessage.parse(broken)), "gzip")
    })
  )

  it.effect("multipart/report with another report-type is a hard error", () =>
    Effect.gen(function* () {
      const other = yield* Effect.promise(() => reportMail(report1Json, "other"))
      assert.strictEqual(yield* reason(ReportMessage.parse(other)), "wrong-report-type")
      const missing = yield* Effect.promise(() => multipart("multipart/report", [gzipPart(gzip(report1Json))]))
      assert.strictEqual(yield* reason(ReportMessage.parse(missing)), "wrong-report-type")
      const dsn = yield* Effect.promise(() =>
        multipart("multipart/report; report-type=delivery-status", [textPart, jsonPart(report1Json)])
      )
      const error = yield* Effect.flip(ReportMessage.parse(dsn))
      assert.strictEqual(error._tag, "ReportMessageError")
      assert.include(error.message, "delivery-status")
    })
  )

  it.effect("children of multipart/related or multipart/mixed are not considered", () =>
    Effect.gen(function* () {
      for (const type of ["multipart/related", "multipart/mixed", "multipart/alternative"]) {
        const mail = yield* Effect.promise(() => multipart(type, [textPart, jsonPart(report1Json)]))
        assert.strictEqual(yield* reason(ReportMessage.parse(mail)), "no-report", type)
      }
    })
  )

  it.effect("application/json instead of the tlsrpt media type is no report", () =>
    Effect.gen(function* () {
      const mail = yield* Effect.promise(() =>
        report([textPart, { contentType: "application/json", body: report1Json }])
      )
      assert.strictEqual(yield* reason(ReportMessage.parse(mail)), "no-report")
      const gz = yield* Effect.promise(() => report([{ contentType: "application/gzip", body: gzip(report1Json) }]))
      assert.strictEqual(yield* reason(ReportMessage.parse(gz)), "no-report")
      const plain = yield* Effect.promise(() => singlePart(textPart))
      assert.strictEqual(yield* reason(ReportMessage.parse(plain)), "no-report")
    })
  )

  it.effect("multiparts are searched recursively, but a leaf must be a direct child of multipart/report", () =>
    Effect.gen(function* () {
      const nested = yield* Effect.promise(() =>
        multipart("multipart/mixed", [
          textPart,
          { multipart: "multipart/report; report-type=tlsrpt", parts: [textPart, gzipPart(gzip(report1Json))] }
        ])
      )
      assert.deepStrictEqual(yield* ReportMessage.parse(nested), report1)
      const grandchild = yield* Effect.promise(() =>
        report([textPart, { multipart: "multipart/mixed", parts: [gzipPart(gzip(report1Json))] }])
      )
      assert.strictEqual(yield* reason(ReportMessage.parse(grandchild)), "no-report")
      const wrongNested = yield* Effect.promise(() =>
        multipart("multipart/mixed", [
          { multipart: "multipart/report; report-type=other", parts: [textPart] },
          { multipart: "multipart/report; report-type=tlsrpt", parts: [gzipPart(gzip(report1Json))] }
        ])
      )
      assert.strictEqual(yield* reason(ReportMessage.parse(wrongNested)), "wrong-report-type")
    })
  )

  it.effect("a report inside an attached message/rfc822 is not looked at", () =>
    Effect.gen(function* () {
      const inner = yield* Effect.promise(() => reportMail(report1Json))
      const mail = yield* Effect.promise(() => report([textPart, { contentType: "message/rfc822", body: inner }]))
      assert.strictEqual(yield* reason(ReportMessage.parse(mail)), "no-report")
    })
  )

  it.effect("broken gzip, invalid JSON and a JSON value that is not a report", () =>
    Effect.gen(function* () {
      const truncated = gzip(report1Json).subarray(0, 40)
      const cases: ReadonlyArray<readonly [Part, ReportMessage.ReportMessageErrorReason]> = [
        [gzipPart(truncated), "gzip"],
        [gzipPart(Buffer.from("PK\u0003\u0004 a zip file")), "gzip"],
        [gzipPart(gzip("{not json")), "invalid-json"],
        [jsonPart('{"organization-name": '), "invalid-json"],
        [jsonPart(""), "invalid-json"],
        [jsonPart('{"policies": 5}'), "invalid-report"],
        [jsonPart("[]"), "invalid-report"],
        [gzipPart(gzip("42")), "invalid-report"]
      ]
      for (const [part, expected] of cases) {
        const mail = yield* Effect.promise(() => report([textPart, part]))
        assert.strictEqual(yield* reason(ReportMessage.parse(mail)), expected, JSON.stringify(part.body).slice(0, 60))
      }
    })
  )

  it.effect("a gzip bomb (1 GiB of zeros) is stopped at 20 MiB while inflating", () =>
    Effect.gen(function* () {
      const bomb = yield* Effect.promise(() => zeroBomb(1024 * 1024 * 1024))
      assert.isBelow(bomb.length, 2 * 1024 * 1024)
      const mail = yield* Effect.promise(() => report([textPart, gzipPart(bomb)]))
      assert.strictEqual(yield* reason(ReportMessage.parse(mail)), "json-too-large")
      // Cut the stream short: inflating it all would end in "unexpected end of file" (a gzip error);
      // stopping at the limit never gets there.
      const cut = bomb.subarray(0, Math.floor(bomb.length * 0.9))
      assert.strictEqual(
        yield* reason(ReportMessage.parse(yield* Effect.promise(() => singlePart(gzipPart(cut))))),
        "json-too-large"
      )
      assert.strictEqual(yield* reason(ReportMessage.parseJsonOrGzip(cut)), "json-too-large")
    })
  )

  it.effect("20 MiB of JSON after gunzip is accepted, one byte more is not", () =>
    Effect.gen(function* () {
      const limit = ReportMessage.MAX_JSON_BYTES
      const ok = yield* Effect.promise(() => singlePart(gzipPart(gzip(paddedJson(limit)))))
      assert.deepStrictEqual(yield* ReportMessage.parse(ok), report1)
      const over = yield* Effect.promise(() => singlePart(gzipPart(gzip(paddedJson(limit + 1)))))
      assert.strictEqual(yield* reason(ReportMessage.parse(over)), "json-too-large")
    })
  )

  it.effect("a message over 15 MiB is refused before parsing; exactly 15 MiB is read", () =>
    Effect.gen(function* () {
      const limit = ReportMessage.MAX_MESSAGE_BYTES
      const head = "Content-Type: application/tlsrpt+json\r\n\r\n"
      const exact = head + paddedJson(limit - head.length)
      assert.strictEqual(Buffer.byteLength(exact), limit)
      assert.deepStrictEqual(yield* ReportMessage.parse(exact), report1)
      assert.strictEqual(yield* reason(ReportMessage.parse(`${exact} `)), "too-large")
      assert.strictEqual(yield* reason(ReportMessage.parse(Buffer.from(`${exact} `))), "too-large")
      // a string whose UTF-8 form is over the limit though it has fewer characters
      const wide = head + report1Json + "☺".repeat((limit - head.length - report1Json.length) / 3 + 1)
      assert.isBelow(wide.length, limit)
      assert.strictEqual(yield* reason(ReportMessage.parse(wide)), "too-large")
    })
  )

  it.effect("a MIME structure the splitter refuses is a mime error", () =>
    Effect.gen(function* () {
      const hugeHeader = `X-Big: ${"a".repeat(3 * 1024 * 1024)}\r\nContent-Type: application/tlsrpt+json\r\n\r\n${report1Json}`
      assert.strictEqual(yield* reason(ReportMessage.parse(hugeHeader)), "mime")
    })
  )
})

describe("ReportMessage.parseJsonOrGzip", () => {
  it.effect("reads .json and .json.gz files", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* ReportMessage.parseJsonOrGzip(Buffer.from(report1Json)), report1)
      assert.deepStrictEqual(yield* ReportMessage.parseJsonOrGzip(gzip(report1Json)), report1)
      assert.deepStrictEqual(yield* ReportMessage.parseJsonOrGzip(report1Json), report1)
      assert.deepStrictEqual(yield* ReportMessage.parseJsonOrGzip(new Uint8Array(gzip(report1Json))), report1)
    })
  )

  it.effect("errors", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* reason(ReportMessage.parseJsonOrGzip("nope")), "invalid-json")
      assert.strictEqual(yield* reason(ReportMessage.parseJsonOrGzip(Buffer.from([0x1f, 0x8b, 8, 0]))), "gzip")
      assert.strictEqual(yield* reason(ReportMessage.parseJsonOrGzip('{"date-range": 1}')), "invalid-report")
      const big = paddedJson(ReportMessage.MAX_JSON_BYTES + 1)
      assert.strictEqual(yield* reason(ReportMessage.parseJsonOrGzip(big)), "json-too-large")
      assert.strictEqual(yield* reason(ReportMessage.parseJsonOrGzip(Buffer.from(big))), "json-too-large")
    })
  )
})

describe("ReportMessage nesting bound (issue 11 point 7)", () => {
  it.effect("JSON nested 100,000 levels deep is refused as invalid-json, not a stack overflow", () =>
    Effect.gen(function* () {
      const deep = `{"organization-name":${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}}`
      const e = yield* Effect.flip(ReportMessage.parseJsonOrGzip(deep))
      assert.strictEqual(e.reason, "invalid-json")
      assert.include(e.message, "nested deeper than 64")
    })
  )
})
