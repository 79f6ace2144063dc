/**
 * The stages a fleet test runs on: a store, the in-memory DNS answers, the real composer with an
 * RSA DKIM key, and result rows with failures for N recipient domains sharing a few MX hosts.
 */
import { type Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Dns, TlsrptLookup } from "@tlsrpt/dns"
import { dkimKeyFromPem, generateDkimKeyPair, makeSubmitter, ReportMail } from "@tlsrpt/mail"
import type { NewResultRow } from "@tlsrpt/store"
import { Effect, Either, Layer } from "effect"

export const DAY = "2025-01-09" as Day.Day

export const dkimPem = Effect.runSync(Effect.cached(generateDkimKeyPair("rsa-sha256")))

export const mailLayer = (privateKeyPem: string) => {
  const submitter = Either.getOrThrow(makeSubmitter({ domain: "reports.example" }))
  const key = Either.getOrThrow(
    dkimKeyFromPem({
      domain: "reports.example",
      selector: "fleet",
      algorithm: "rsa-sha256",
      privateKeyPem,
      file: "(generated)"
    })
  )
  return ReportMail.layer({ submitter, dkim: [key] })
}

export const rcpt = (i: number) => `d${i}.example`
export const mx = (i: number) => `mx${i % 7}.hosting.example`

/** Recipient domains 0..n-1, each with its own row (a failure) and a DANE row for its MX host. */
export const rows = (n: number, day: Day.Day = DAY): Array<NewResultRow> =>
  Array.from({ length: n }, (_, i) => {
    const d = Domain.unsafeMake(rcpt(i))
    const h = Domain.unsafeMake(mx(i))
    return [
      {
        policyDomain: d,
        day,
        recipientDomain: d,
        isHost: false,
        sendReport: true,
        results: [
          PolicyResult.make("sts", d.ascii, {
            policyString: ["version: STSv1", "mode: enforce"],
            mxHost: [h.ascii],
            success: 10,
            failure: 1,
            failureDetails: [{ resultType: "certificate-expired", receivingMxHostname: h.ascii, failedSessionCount: 1 }]
          })
        ]
      },
      {
        policyDomain: h,
        day,
        recipientDomain: d,
        isHost: true,
        sendReport: true,
        results: [
          PolicyResult.make("tlsa", h.ascii, {
            policyString: ["3 1 1 abcd"],
            success: 5,
            failure: 2,
            failureDetails: [{ resultType: "validation-failure", receivingMxHostname: h.ascii, failedSessionCount: 2 }]
          })
        ]
      }
    ]
  }).flat()

/** Every recipient domain and MX host publishes a mailto record. */
export const answers = (n: number): Record<string, ReadonlyArray<string>> => {
  const out: Record<string, ReadonlyArray<string>> = {}
  for (let i = 0; i < n; i++) {
    out[`_smtp._tls.${rcpt(i)}.`] = [`v=TLSRPTv1; rua=mailto:tlsrpt@${rcpt(i)}`]
    out[`_smtp._tls.${mx(i)}.`] = [`v=TLSRPTv1; rua=mailto:tls@hosting.example`]
  }
  return out
}

export const lookupLayer = (n: number) => TlsrptLookup.layer.pipe(Layer.provide(Dns.layerTest(answers(n))))
