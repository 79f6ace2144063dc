/**
 * End to end on real TLS: certificates from a test CA made at test time, SMTP servers on loopback
 * (smtp-server), MTA-STS policies served over HTTPS on loopback with their `_mta-sts` records on the
 * loopback DNS server, deliveries by the example Effect MTA (nodemailer + the SmtpAttempt helper),
 * the Collector on the simulation kit's store, then a report round on TestClock whose reports are
 * checked (result types, DKIM verified with mailauth as the worker's end-to-end test does).
 */
import * as https from "node:https"
import type { LookupFunction } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Collector } from "@tlsrpt/collector"
import { deliver, type Route } from "@tlsrpt/example-effect-mta"
import { MtaSts } from "@tlsrpt/outcome"
import { defaultConfig } from "@tlsrpt/reporter"
import { ResultStore } from "@tlsrpt/store"
import { DnsServer, SmtpSink, TestCa } from "@tlsrpt/testkit"
import {
  DKIM_SELECTOR,
  type DnsAnswers,
  deliverAndParse,
  dkimDnsRecord,
  makeEnv,
  nextRound,
  record,
  startSchedule
} from "@tlsrpt/testkit/simulation"
import { Effect, Fiber, Layer, Ref, type Scope, TestClock } from "effect"
import { dkimVerify } from "mailauth"

const SUBMITTER = "reports.example"
const DOMAINS = ["valid", "expired", "wronghost", "untrusted", "plain", "mismatch", "fetch404"].map(
  (d) => `${d}.example`
)

/** The MTA-STS policy host for every domain: a policy per Host header, 404 for the others. */
const policyServer = (tls: TestCa.Leaf, policies: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.async<https.Server>((resume) => {
      const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
        const domain = (req.headers.host ?? "").replace(/^mta-sts\./, "").replace(/:\d+$/, "")
        const policy = policies[domain]
        if (req.url !== "/.well-known/mta-sts.txt" || policy === undefined) {
          res.writeHead(404).end("not here")
          return
        }
        res.writeHead(200, { "content-type": "text/plain" }).end(policy)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (s) =>
      Effect.async<void>((resume) => {
        s.close(() => resume(Effect.void))
      })
  )

const loopback: LookupFunction = (_host, options, callback) => {
  if (typeof options === "object" && options.all) callback(null, [{ address: "127.0.0.1", family: 4 }])
  else callback(null, "127.0.0.1", 4)
}

const policy = (mx: string) => `version: STSv1\r\nmode: enforce\r\nmx: ${mx}\r\nmax_age: 86400\r\n`

/** Every row as [policy domain, host?, policy type, successes, failures, "result-type/reason"…]. */
const rowsOf = Effect.gen(function* () {
  const rows = yield* (yield* ResultStore).listResults()
  return rows
    .map((r) => {
      const p = r.results[0]!
      return [
        r.policyDomain,
        r.isHost ? "host" : "recipient",
        p.policy.policyType,
        p.summary.totalSuccessfulSessionCount,
        p.summary.totalFailureSessionCount,
        ...p.failureDetails.map((d) => `${d.resultType}/${d.failureReasonCode ?? ""}`)
      ].join(" ")
    })
    .sort()
})

const setup = Effect.gen(function* () {
  const ca = yield* TestCa.make()
  const [validLeaf, expiredLeaf, otherLeaf, rogueLeaf, stsLeaf] = yield* Effect.all([
    ca.leaf(["mx.valid.example", "mx.fetch404.example"]),
    ca.leaf(["mx.expired.example"], { days: -1 }),
    ca.leaf(["other.example"]),
    ca.leaf(["mx.untrusted.example"], { untrusted: true }),
    ca.leaf(DOMAINS.map((d) => `mta-sts.${d}`))
  ])
  const [valid, expired, other, rogue, plain] = yield* Effect.all([
    SmtpSink.make({ tls: validLeaf }),
    SmtpSink.make({ tls: expiredLeaf }),
    SmtpSink.make({ tls: otherLeaf }),
    SmtpSink.make({ tls: rogueLeaf }),
    SmtpSink.make()
  ])
  const server = yield* policyServer(stsLeaf, {
    "valid.example": policy("mx.valid.example"),
    "wronghost.example": policy("mx.wronghost.example"),
    "mismatch.example": policy("mx.elsewhere.example")
  })
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const dns = yield* DnsServer.make({
    "_mta-sts.valid.example": ["v=STSv1; id=1"],
    "_mta-sts.wronghost.example": ["v=STSv1; id=1"],
    "_mta-sts.mismatch.example": ["v=STSv1; id=1"],
    "_mta-sts.fetch404.example": ["v=STSv1; id=1"]
  })
  const route = (domain: string, sink: SmtpSink.SmtpSink): Route => ({
    recipientDomain: domain,
    mxHost: `mx.${domain}`,
    address: sink.host,
    port: sink.port,
    tls: { ca: ca.ca }
  })
  return {
    mtaSts: MtaSts.layer({ dnsServers: [dns.address], port, ca: ca.ca, lookup: loopback }),
    routes: [
      route("valid.example", valid),
      route("expired.example", expired),
      route("wronghost.example", other),
      route("untrusted.example", rogue),
      route("plain.example", plain),
      route("mismatch.example", valid),
      route("fetch404.example", valid)
    ],
    sinks: { valid, expired, other, rogue, plain }
  }
})

const deliverAll = (routes: ReadonlyArray<Route>): Effect.Effect<ReadonlyArray<string>, never, Collector | MtaSts> =>
  Effect.forEach(routes, (route) =>
    deliver({ from: "a@sender.example", to: [`b@${route.recipientDomain}`], raw: message(route) }, route).pipe(
      Effect.match({
        onFailure: () => `${route.recipientDomain} failed`,
        onSuccess: () => `${route.recipientDomain} ok`
      })
    )
  )

const message = (route: Route) =>
  `From: a@sender.example\r\nTo: b@${route.recipientDomain}\r\nSubject: hello\r\n\r\nhello\r\n`

describe("real TLS: deliveries → rows → a report round", () => {
  it.scoped(
    "valid, expired, wrong host name, untrusted issuer, no STARTTLS, MTA-STS mx mismatch, policy 404",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.parse("2024-01-09T10:00:00Z"))
        const { mtaSts, routes, sinks } = yield* setup
        const answers: Record<string, ReadonlyArray<string>> = {}
        for (const d of DOMAINS) answers[`_smtp._tls.${d}.`] = record(`mailto:tlsrpt@${d}`)
        answers[`${DKIM_SELECTOR}._domainkey.${SUBMITTER}.`] = [yield* dkimDnsRecord]
        const dnsRef = yield* Ref.make<DnsAnswers>(new Map(Object.entries(answers)))
        const env = yield* makeEnv({ submitter: SUBMITTER, dns: dnsRef })

        yield* Effect.gen(function* () {
          // The collector lives in its own scope: closing it flushes what it holds.
          const delivered = yield* deliverAll(routes).pipe(
            Effect.provide(Layer.merge(Collector.layer(), mtaSts)),
            Effect.scoped
          )
          assert.deepStrictEqual(delivered, [
            "valid.example ok",
            "expired.example ok",
            "wronghost.example failed",
            "untrusted.example ok",
            "plain.example ok",
            "mismatch.example failed",
            "fetch404.example ok"
          ])
          // what the servers saw: TLS where it was set up, the refused ones got nothing
          const secure = (s: SmtpSink.SmtpSink) => Effect.map(s.received, (r) => r.map((m) => m.secure))
          assert.deepStrictEqual(yield* secure(sinks.valid), [true, true])
          assert.deepStrictEqual(yield* secure(sinks.plain), [false])
          assert.deepStrictEqual(yield* secure(sinks.other), [])

          assert.deepStrictEqual(yield* rowsOf, [
            "expired.example recipient no-policy-found 1 0 certificate-expired/",
            "fetch404.example recipient sts 1 0 sts-policy-fetch-error/no-policy-served",
            "mismatch.example recipient sts 0 1 validation-failure/mtasts-policy-mx-mismatch",
            "mx.expired.example host no-policy-found 1 0",
            "mx.fetch404.example host no-policy-found 1 0",
            "mx.plain.example host no-policy-found 0 1 starttls-not-supported/",
            "mx.untrusted.example host no-policy-found 1 0",
            "mx.valid.example host no-policy-found 1 0",
            "mx.wronghost.example host no-policy-found 0 1",
            "plain.example recipient no-policy-found 0 1 starttls-not-supported/",
            "untrusted.example recipient no-policy-found 1 0 certificate-not-trusted/",
            "valid.example recipient sts 1 0",
            "wronghost.example recipient sts 0 1 certificate-host-mismatch/"
          ])
          // the session facts are in the details: addresses and the greeting without its code
          const rows = yield* (yield* ResultStore).listResults({ domain: "plain.example" })
          const detail = rows.find((r) => !r.isHost)!.results[0]!.failureDetails[0]!
          assert.strictEqual(detail.receivingIp, "127.0.0.1")
          assert.strictEqual(detail.receivingMxHostname, "mx.plain.example")
          assert.match(detail.receivingMxHelo ?? "", /ESMTP/)
          assert.notMatch(detail.receivingMxHelo ?? "", /^220/)

          // the round for 2024-01-09, on TestClock
          yield* TestClock.setTime(Date.parse("2024-01-10T00:05:00Z"))
          const { rounds, fiber } = yield* startSchedule({ ...defaultConfig, https: false })
          yield* nextRound(rounds)
          const sent = yield* deliverAndParse
          yield* Fiber.interrupt(fiber)

          // one report per recipient domain with a failure; valid.example had none (docs/design.md#failure-rule)
          const byDomain = Object.fromEntries(
            sent.map((s) => [s.to, s.report.policies.flatMap((p) => p.failureDetails.map((d) => d.resultType)).sort()])
          )
          assert.deepStrictEqual(byDomain, {
            "tlsrpt@expired.example": ["certificate-expired"],
            "tlsrpt@fetch404.example": ["sts-policy-fetch-error"],
            "tlsrpt@mismatch.example": ["validation-failure"],
            // the recipient domain's report carries its MX host's result too (docs/design.md#mx-host-rewrite)
            "tlsrpt@plain.example": ["starttls-not-supported", "starttls-not-supported"],
            "tlsrpt@untrusted.example": ["certificate-not-trusted"],
            "tlsrpt@wronghost.example": ["certificate-host-mismatch"]
          })
          // DKIM: every report verifies with the key published for the submitter
          for (const s of sent) {
            const verified = yield* Effect.promise(() =>
              dkimVerify(Buffer.from(s.raw), {
                resolver: async (name: string) => {
                  const answer = answers[`${name}.`]
                  if (answer === undefined) throw Object.assign(new Error("no record"), { code: "ENOTFOUND" })
                  return answer.map((txt) => [txt])
                }
              })
            )
            const pass = verified.results.filter((r) => r.status.result === "pass")
            assert.strictEqual(pass.length, 1, JSON.stringify(verified.results.map((r) => r.status)))
            assert.strictEqual(pass[0]!.signingDomain, SUBMITTER)
          }
        }).pipe(Effect.provide(env))
      }) as Effect.Effect<void, unknown, Scope.Scope>
  )
})
