import { assert, describe, it } from "@effect/vitest"
import { Domain, EmailAddress, Report } from "@tlsrpt/core"
import { Effect, Either, FastCheck as fc, TestClock } from "effect"
import { readFileSync } from "node:fs"
import { dkimDnsName, dkimKeyFromPem, generateDkimKeyPair } from "../src/DkimKeys.js"
import { canonicalBodyRelaxed, makeDkimSigner } from "../src/DkimSigner.js"
import { makeReportMail, OVERSIGNED_HEADERS } from "../src/ReportMail.js"
import { makeSubmitter } from "../src/Submitter.js"
import { verifyDkimpy, verifyDkimpyAll, verifyMailauth } from "./DkimVerifiers.js"

const seed = JSON.parse(readFileSync(new URL("../../testkit/fixtures/seed.json", import.meta.url), "utf8")) as {
  readonly reports: { readonly report1: unknown }
}
const report1 = Either.getOrThrow(Report.fromJson(seed.reports.report1))
const NOW = Date.UTC(2024, 0, 10, 0, 5, 7)
const submitter = Either.getOrThrow(makeSubmitter({ domain: "mox.example" }))

const keyPairs = Effect.runPromise(
  Effect.all([generateDkimKeyPair("rsa-sha256"), generateDkimKeyPair("ed25519-sha256")], { concurrency: 2 })
)
const fixture = Effect.promise(() => keyPairs).pipe(
  Effect.map(([rsa, ed]) => {
    const key = (selector: string, algorithm: "rsa-sha256" | "ed25519-sha256", privateKeyPem: string) =>
      Either.getOrThrow(dkimKeyFromPem({ domain: "mox.example", selector, algorithm, privateKeyPem, file: selector }))
    const keys = [key("rsa2024", "rsa-sha256", rsa.privateKeyPem), key("ed2024", "ed25519-sha256", ed.privateKeyPem)]
    const records = new Map([
      [dkimDnsName(keys[0]!), rsa.dnsRecord],
      [dkimDnsName(keys[1]!), ed.dnsRecord]
    ])
    return { keys, records }
  })
)

const composed = Effect.gen(function* () {
  yield* TestClock.setTime(NOW)
  const { keys, records } = yield* fixture
  const service = yield* makeReportMail({ submitter, dkim: keys })
  const mail = yield* service.compose({
    report: report1,
    policyDomain: Domain.unsafeMake("☺.example"),
    day: report1.dateRange.startDatetime.toISOString().slice(0, 10) as never,
    to: [Either.getOrThrow(EmailAddress.parse("tls-reports@xn--74h.example"))]
  })
  return { raw: Buffer.from(mail.raw).toString("latin1"), records }
})

/** Puts a header field on top of the signed message, where a forwarder or an attacker would add it. */
const addOnTop = (raw: string, field: string): string => {
  const lines = raw.split("\r\n")
  const firstUnsigned = lines.findIndex((l) => !/^(?:DKIM-Signature:|[ \t])/i.test(l))
  return [...lines.slice(0, firstUnsigned), field, ...lines.slice(firstUnsigned)].join("\r\n")
}

describe("DkimSigner", () => {
  it.effect("a report signed with RSA-SHA256 and Ed25519-SHA256 verifies with mailauth and with dkimpy", () =>
    Effect.gen(function* () {
      const { raw, records } = yield* composed
      assert.deepStrictEqual(yield* verifyMailauth(raw, records, NOW), ["pass", "pass"])
      assert.deepStrictEqual(yield* verifyDkimpy(raw, records), ["pass", "pass"])
    })
  )

  it.effect("oversigning: adding a second signed field breaks both signatures (RFC 6376 §8.15)", () =>
    Effect.gen(function* () {
      const { raw, records } = yield* composed
      // an unsigned field may be added (as relays add Received:), so the check below is about h=
      const relayed = addOnTop(raw, "Received: from relay.example by mx.example")
      assert.deepStrictEqual(yield* verifyMailauth(relayed, records, NOW), ["pass", "pass"])
      assert.deepStrictEqual(yield* verifyDkimpy(relayed, records), ["pass", "pass"])
      const tampered = OVERSIGNED_HEADERS.map((name) => addOnTop(raw, `${name}: added.example`))
      for (const [i, t] of tampered.entries()) {
        assert.deepStrictEqual(yield* verifyMailauth(t, records, NOW), ["fail", "fail"], OVERSIGNED_HEADERS[i])
      }
      assert.deepStrictEqual(
        yield* verifyDkimpyAll(tampered, records),
        tampered.map(() => ["fail", "fail"])
      )
    })
  )

  /** The message as SMTP delivers it: its data always ends in CRLF (RFC 5321 §4.1.1.4). */
  const onTheWire = (raw: string) => (raw.endsWith("\r\n") ? raw : `${raw}\r\n`)

  // Header values and bodies with runs of spaces and tabs, folds, trailing white space and trailing
  // empty lines: what relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4) has to get right.
  const text = fc.stringMatching(/^[ -~\t]{0,40}$/)
  const headerValue = fc
    .array(fc.stringMatching(/^[!-~][ -~\t]{0,30}$/), { minLength: 1, maxLength: 3 })
    .map((parts) => parts.join("\r\n\t"))
  const body = fc
    .array(text, { maxLength: 6 })
    .chain((lines) => fc.nat({ max: 3 }).map((empty) => lines.join("\r\n") + "\r\n".repeat(empty)))

  it.effect.prop(
    "any message signed verifies with mailauth",
    { subject: headerValue, extra: headerValue, body },
    ({ subject, extra, body }) =>
      Effect.gen(function* () {
        const { keys, records } = yield* fixture
        const signer = makeDkimSigner(
          keys.map((k) => ({ ...k, domain: k.domain.ascii })),
          { headers: ["From", "Subject", "X-Extra", "Date"], oversign: ["Subject"] }
        )
        const message = Buffer.from(
          `From: a@mox.example\r\nSubject:  ${subject} \r\nX-Extra:${extra}\r\nX-Extra: ${extra}\r\n\r\n${body}`,
          "latin1"
        )
        // Verified as it travels: SMTP ends the data with CRLF (docs/design.md#body-without-final-crlf).
        const raw = onTheWire(signer.sign(message, new Date(NOW)) + message.toString("latin1"))
        assert.deepStrictEqual(yield* verifyMailauth(raw, records, NOW), ["pass", "pass"])
      }),
    { fastCheck: { numRuns: 60 } }
  )

  it.effect("a body without a final CRLF is signed as it arrives, its last line's trailing white space dropped", () =>
    Effect.gen(function* () {
      const { keys, records } = yield* fixture
      const signer = makeDkimSigner(
        keys.map((k) => ({ ...k, domain: k.domain.ascii })),
        { headers: ["From", "Subject"], oversign: [] }
      )
      // Each tail is one that mailauth or dkimpy canonicalizes differently when given it unterminated.
      const bodies = [" ", "report ", "report\t", "report  ", "line\r\n \t"]
      for (const body of bodies) {
        assert.strictEqual(canonicalBodyRelaxed(body), canonicalBodyRelaxed(`${body}\r\n`), JSON.stringify(body))
      }
      const raws = bodies.map((body) => {
        const message = Buffer.from(`From: a@mox.example\r\nSubject: s\r\n\r\n${body}`, "latin1")
        return onTheWire(signer.sign(message, new Date(NOW)) + message.toString("latin1"))
      })
      for (const [i, raw] of raws.entries()) {
        assert.deepStrictEqual(yield* verifyMailauth(raw, records, NOW), ["pass", "pass"], JSON.stringify(bodies[i]))
      }
      assert.deepStrictEqual(
        yield* verifyDkimpyAll(raws, records),
        raws.map(() => ["pass", "pass"])
      )
    })
  )

  it.prop("relaxed body canonicalization is idempotent and ends in one CRLF or is empty", { body }, ({ body }) => {
    const once = canonicalBodyRelaxed(body)
    assert.strictEqual(canonicalBodyRelaxed(once), once)
    assert.isTrue(once === "" || (once.endsWith("\r\n") && !once.endsWith("\r\n\r\n")))
    assert.notMatch(once, /[ \t]\r\n|\t| {2}/)
  })
})
