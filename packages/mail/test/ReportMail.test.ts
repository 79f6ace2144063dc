import { readFileSync } from "node:fs"
import { gunzipSync } from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import { Day, Domain, EmailAddress, Report } from "@tlsrpt/core"
import { Effect, Either, Metric, TestClock } from "effect"
import { dkimVerify } from "mailauth/lib/dkim/verify.js"
import PostalMime from "postal-mime"
import { type DkimKey, dkimDnsName, dkimKeyFromPem, generateDkimKeyPair } from "../src/DkimKeys.js"
import {
  type ComposedMail,
  gzipReport,
  makeReportMail,
  ReportMail,
  type ReportMailService,
  reportsComposed,
  OVERSIGNED_HEADERS,
  SIGNED_HEADERS
} from "../src/ReportMail.js"
import { makeSubmitter } from "../src/Submitter.js"
import { resolverFor } from "./DkimVerifiers.js"

const seed = JSON.parse(readFileSync(new URL("../../testkit/fixtures/seed.json", import.meta.url), "utf8")) as {
  readonly reports: { readonly report1: unknown }
}
const report1 = Either.getOrThrow(Report.fromJson(seed.reports.report1))
const policyDomain = Domain.unsafeMake("☺.example")
const day = Either.getOrThrow(Day.parse("2024-01-09"))
// 2024-01-10T00:05:07Z: the run just after the day ends (docs/design.md#schedule).
const NOW = Date.UTC(2024, 0, 10, 0, 5, 7)
const address = (s: string) => Either.getOrThrow(EmailAddress.parse(s))
const submitter = Either.getOrThrow(makeSubmitter({ domain: "mox.example" }))

// Generated once: RSA-2048 key generation takes a moment.
const keyPairs = Effect.runPromise(
  Effect.all([generateDkimKeyPair("rsa-sha256"), generateDkimKeyPair("ed25519-sha256")], { concurrency: 2 })
)

interface Fixture {
  readonly keys: ReadonlyArray<DkimKey>
  readonly records: ReadonlyMap<string, string>
}

const fixture: Effect.Effect<Fixture> = Effect.promise(() => keyPairs).pipe(
  Effect.map(([rsa, ed]) => {
    const key = (selector: string, algorithm: DkimKey["algorithm"], privateKeyPem: string) =>
      Either.getOrThrow(dkimKeyFromPem({ domain: "mox.example", selector, algorithm, privateKeyPem, file: selector }))
    const keys = [key("rsa2024", "rsa-sha256", rsa.privateKeyPem), key("ed2024", "ed25519-sha256", ed.privateKeyPem)]
    const records = new Map([
      [dkimDnsName(keys[0]!), rsa.dnsRecord],
      [dkimDnsName(keys[1]!), ed.dnsRecord]
    ])
    return { keys, records }
  })
)

const verify = (raw: Uint8Array | string, records: ReadonlyMap<string, string>) =>
  Effect.promise(() =>
    dkimVerify(typeof raw === "string" ? raw : Buffer.from(raw), {
      resolver: resolverFor(records),
      curTime: new Date(NOW + 60_000)
    })
  )

const composeReport1 = (service: ReportMailService, to = ["tls-reports@xn--74h.example"]) =>
  service.compose({ report: report1, policyDomain, day, to: to.map(address) })

const headerBlock = (mail: ComposedMail): string => {
  const text = Buffer.from(mail.raw).toString("latin1")
  return text.slice(0, text.indexOf("\r\n\r\n"))
}

const headerValue = async (raw: Uint8Array, key: string): Promise<ReadonlyArray<string>> =>
  (await PostalMime.parse(raw)).headers.filter((h) => h.key === key.toLowerCase()).map((h) => h.value)

describe("ReportMail.compose", () => {
  it.effect("puts the report, gzipped, in an application/tlsrpt+gzip attachment (RFC 8460 §5.3)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const mail = yield* composeReport1(service)
      const parsed = yield* Effect.promise(() => PostalMime.parse(mail.raw))
      assert.strictEqual(parsed.attachments.length, 1)
      const attachment = parsed.attachments[0]!
      assert.strictEqual(attachment.mimeType, "application/tlsrpt+gzip")
      assert.strictEqual(attachment.filename, "mox.example!xn--74h.example!1704758400!1704844799.json.gz")
      assert.strictEqual(attachment.disposition, "attachment")
      const json = gunzipSync(new Uint8Array(attachment.content as ArrayBuffer)).toString("utf8")
      assert.deepStrictEqual(JSON.parse(json), seed.reports.report1)
      assert.deepStrictEqual(Either.getOrThrow(Report.decodeJsonString(json)), report1)
      assert.match(
        Buffer.from(mail.raw).toString("latin1"),
        /\r\nContent-Type: application\/tlsrpt\+gzip;[\s\S]*?\r\nContent-Transfer-Encoding: base64\r\n/
      )
    })
  )

  it.effect("writes the RFC 8460 §5.3 headers and the text part (docs/design.md#message-composition)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const mail = yield* composeReport1(service)
      const subject =
        "Report Domain: xn--74h.example Submitter: mox.example Report-ID: <20240109.xn--74h.example@mox.example>"
      assert.strictEqual(mail.subject, subject)
      assert.strictEqual(mail.envelopeFrom, "postmaster@mox.example")
      assert.match(mail.messageId, /^<[A-Za-z0-9_-]{22}@mox\.example>$/)

      const parsed = yield* Effect.promise(() => PostalMime.parse(mail.raw))
      assert.strictEqual(parsed.subject, subject)
      assert.strictEqual(parsed.messageId, mail.messageId)
      assert.deepStrictEqual(parsed.from, { name: "", address: "postmaster@mox.example" })
      const get = (key: string) => parsed.headers.filter((h) => h.key === key).map((h) => h.value)
      const [contentType] = get("content-type")
      assert.match(contentType!, /^multipart\/report; report-type="tlsrpt"; boundary="[^"]+"$/)
      assert.deepStrictEqual(get("tls-report-domain"), ["xn--74h.example"])
      assert.deepStrictEqual(get("tls-report-submitter"), ["mox.example"])
      assert.deepStrictEqual(get("tls-required"), ["No"])
      assert.deepStrictEqual(get("mime-version"), ["1.0"])
      // Names spelled as RFC 8460 writes them.
      const block = headerBlock(mail)
      assert.include(block, "\r\nTLS-Report-Domain: xn--74h.example\r\n")
      assert.include(block, "\r\nTLS-Report-Submitter: mox.example\r\n")
      assert.include(block, "\r\nTLS-Required: No\r\n")

      const text = parsed.text ?? ""
      assert.include(text, "Policy Domain: ☺.example/xn--74h.example")
      assert.include(text, "Submitter: mox.example")
      assert.include(text, "Report-ID: 20240109.xn--74h.example@mox.example")
      assert.include(text, "Period: 2024-01-09 00:00:00 - 2024-01-10 00:00:00 UTC")
      assert.include(Buffer.from(mail.raw).toString("latin1"), "Content-Type: text/plain; charset=utf-8")
    })
  )

  it.effect("an ASCII policy domain gives a plain 7bit text part", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const mail = yield* service.compose({
        report: report1,
        policyDomain: Domain.unsafeMake("sharedsender.example"),
        day,
        to: [address("tls@sharedsender.example")]
      })
      const raw = Buffer.from(mail.raw).toString("latin1")
      assert.include(raw, "\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n")
      assert.include(raw, "\r\nPolicy Domain: sharedsender.example\r\n")
      assert.include(raw, "filename=mox.example!sharedsender.example!1704758400!1704844799.json.gz")
    })
  )

  it.effect("lists only the given addresses in To, once each (docs/design.md#to-lists-only-the-recipients)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const mail = yield* composeReport1(service, [
        "tls-reports1@mailhost.xn--74h.example",
        "tls-reports3@mailhost.☺.example",
        "TLS-Reports1@mailhost.xn--74h.example"
      ])
      const parsed = yield* Effect.promise(() => PostalMime.parse(mail.raw))
      assert.deepStrictEqual(
        (parsed.to ?? []).map((a) => a.address),
        ["tls-reports1@mailhost.xn--74h.example", "tls-reports3@mailhost.xn--74h.example"]
      )
      assert.notInclude(Buffer.from(mail.raw).toString("latin1"), "tls-reports2")
      const none = yield* Effect.flip(service.compose({ report: report1, policyDomain, day, to: [] }))
      assert.strictEqual(none._tag, "ComposeError")
      assert.strictEqual(none.policyDomain, "xn--74h.example")
    })
  )

  it.effect("a recipient with a non-ASCII local part gets a UTF-8 To (RFC 6532), and the message still signs", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys, records } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const utf8 = yield* composeReport1(service, ["tls-reports@xn--74h.example", "berichte-ü@xn--74h.example"])
      const parsed = yield* Effect.promise(() => PostalMime.parse(utf8.raw))
      assert.deepStrictEqual(
        (parsed.to ?? []).map((a) => a.address),
        // MimeNode writes a UTF-8 address with its U-label domain (RFC 6532 allows either form).
        ["tls-reports@xn--74h.example", "berichte-ü@☺.example"]
      )
      const result = yield* verify(utf8.raw, records)
      assert.deepStrictEqual(
        result.results.map((r) => r.status.result),
        ["pass", "pass"]
      )
    })
  )

  it.effect("takes Date and the DKIM t= from the Clock", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const mail = yield* composeReport1(service)
      const [date] = yield* Effect.promise(() => headerValue(mail.raw, "Date"))
      assert.strictEqual(date, "Wed, 10 Jan 2024 00:05:07 +0000")
      assert.strictEqual(Date.parse(date!), NOW)
      assert.include(headerBlock(mail).replace(/\r\n[ \t]+/g, " "), `t=${NOW / 1000};`)
    })
  )

  it.effect("signs with every key of the submitter domain; RSA-SHA256 and Ed25519-SHA256 verify", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys, records } = yield* fixture
      const other = Either.getOrThrow(
        dkimKeyFromPem({
          domain: "other.example",
          selector: "x",
          algorithm: "ed25519-sha256",
          privateKeyPem: keys[1]!.privateKeyPem,
          file: "x"
        })
      )
      const mail = yield* Effect.flatMap(ReportMail, (s) => composeReport1(s)).pipe(
        Effect.provide(ReportMail.layer({ submitter, dkim: [...keys, other] }))
      )
      const result = yield* verify(mail.raw, records)
      assert.deepStrictEqual(
        // mailauth reports the algorithm as `algo` (its index.d.ts says `algorithm`).
        result.results.map((r) => [r.signingDomain, r.selector, (r as { algo?: string }).algo, r.status.result]),
        [
          ["mox.example", "rsa2024", "rsa-sha256", "pass"],
          ["mox.example", "ed2024", "ed25519-sha256", "pass"]
        ]
      )
      const signatures = headerBlock(mail)
        .replace(/\r\n[ \t]+/g, " ")
        .split("\r\n")
        .filter((l) => l.startsWith("DKIM-Signature:"))
      assert.strictEqual(signatures.length, 2)
      for (const sig of signatures) {
        const h = /\bh=([^;]+);/
          .exec(sig)![1]!
          .split(":")
          .map((s) => s.trim().toLowerCase())
        // every signed field once, and the oversigned ones once more (RFC 6376 §8.15, as mox signs)
        assert.deepStrictEqual(
          h,
          SIGNED_HEADERS.flatMap((s) => (OVERSIGNED_HEADERS.includes(s) ? [s, s] : [s])).map((s) => s.toLowerCase())
        )
        assert.includeMembers(h, ["tls-report-domain", "tls-report-submitter", "from", "to", "subject", "date"])
        assert.include(sig, "c=relaxed/relaxed")
        assert.notMatch(sig, /;\s*l=/)
      }
    })
  )

  it.effect("the signature breaks when TLS-Report-Domain is altered after signing", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys, records } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const mail = yield* composeReport1(service)
      const raw = Buffer.from(mail.raw).toString("latin1")
      const tampered = raw.replace("TLS-Report-Domain: xn--74h.example", "TLS-Report-Domain: evil.example")
      assert.notStrictEqual(tampered, raw)
      const ok = yield* verify(raw, records)
      assert.deepStrictEqual(
        ok.results.map((r) => r.status.result),
        ["pass", "pass"]
      )
      const bad = yield* verify(tampered, records)
      assert.deepStrictEqual(
        bad.results.map((r) => r.status.result),
        ["fail", "fail"]
      )
    })
  )

  it.effect("refuses to start without a DKIM key for the submitter domain", () =>
    Effect.gen(function* () {
      const { keys } = yield* fixture
      const other = Either.getOrThrow(makeSubmitter({ domain: "other.example" }))
      const e = yield* Effect.flip(makeReportMail({ submitter: other, dkim: keys }))
      assert.strictEqual(e._tag, "NoDkimKey")
      assert.strictEqual(e._tag === "NoDkimKey" ? e.domain : "", "other.example")
      const fromLayer = yield* Effect.flip(Effect.provide(ReportMail, ReportMail.layer({ submitter, dkim: [] })))
      assert.strictEqual(fromLayer._tag, "NoDkimKey")
    })
  )

  it.effect("counts composed reports", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { keys } = yield* fixture
      const service = yield* makeReportMail({ submitter, dkim: keys })
      const before = (yield* Metric.value(reportsComposed)).count
      yield* composeReport1(service)
      yield* composeReport1(service)
      assert.strictEqual((yield* Metric.value(reportsComposed)).count - before, 2)
    })
  )
})

describe("gzipReport", () => {
  it("is the gzip of the report's JSON (the https body, RFC 8460 §3)", () => {
    const body = gzipReport(report1)
    assert.strictEqual(body[0], 0x1f)
    assert.strictEqual(body[1], 0x8b)
    assert.strictEqual(gunzipSync(body).toString("utf8"), Report.encodeJsonString(report1))
  })
})
