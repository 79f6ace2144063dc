/**
 * The example MTA in CI: two deliveries through nodemailer to smtp-server on loopback (STARTTLS with
 * a certificate the MTA does not trust, so opportunistic TLS records certificate-not-trusted), outcomes
 * recorded through the Collector, then the daily round on TestClock sends the recipient domain a
 * report saying so.
 */
import { assert, describe, it } from "@effect/vitest"
import { Collector } from "@tlsrpt/collector"
import { MtaSts } from "@tlsrpt/outcome"
import { defaultConfig } from "@tlsrpt/reporter"
import { DnsServer, SmtpSink, TestCa } from "@tlsrpt/testkit"
import { type DnsAnswers, deliverAndParse, makeEnv, nextRound, record, startSchedule } from "@tlsrpt/testkit/simulation"
import { Effect, Fiber, Layer, Ref, TestClock } from "effect"
import { deliver } from "../src/index.js"

describe("examples/effect-mta", () => {
  it.scoped("delivers, records the TLS outcome, and the round reports it", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2024-01-09T10:00:00Z"))
      // STARTTLS with a certificate from a CA the MTA does not trust: opportunistic TLS goes on and
      // records certificate-not-trusted
      const ca = yield* TestCa.make()
      const sink = yield* SmtpSink.make({ tls: yield* ca.leaf(["mx.example.net"]) })
      // no _mta-sts record anywhere: the loopback DNS server answers NXDOMAIN
      const dns = yield* DnsServer.make({})
      const answers = yield* Ref.make<DnsAnswers>(
        new Map([["_smtp._tls.example.net.", record("mailto:tls@example.net")]])
      )
      const env = yield* makeEnv({ submitter: "mta.example", dns: answers })
      const route = { recipientDomain: "example.net", mxHost: "mx.example.net", address: sink.host, port: sink.port }
      const raw = "From: a@mta.example\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"

      const sent = yield* Effect.gen(function* () {
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* deliver({ from: "a@mta.example", to: ["b@example.net"], raw }, route)
            yield* deliver({ from: "a@mta.example", to: ["c@example.net"], raw }, route)
          }).pipe(Effect.provide(Layer.merge(Collector.layer(), MtaSts.layer({ dnsServers: [dns.address] }))))
        )
        assert.deepStrictEqual(
          (yield* sink.received).map((m) => [m.to, m.secure]),
          [
            [["b@example.net"], true],
            [["c@example.net"], true]
          ]
        )
        yield* TestClock.setTime(Date.parse("2024-01-10T00:05:00Z"))
        const { rounds, fiber } = yield* startSchedule({ ...defaultConfig, https: false })
        yield* nextRound(rounds)
        yield* Fiber.interrupt(fiber)
        return yield* deliverAndParse
      }).pipe(Effect.provide(env))

      assert.deepStrictEqual(
        sent.map((s) => s.to),
        ["tls@example.net"]
      )
      const policies = sent[0]!.report.policies.map((p) => [
        p.policy.policyType,
        p.policy.policyDomain,
        p.summary.totalSuccessfulSessionCount,
        p.summary.totalFailureSessionCount,
        p.failureDetails.map((d) => [d.resultType, d.failedSessionCount])
      ])
      assert.deepStrictEqual(policies, [
        ["no-policy-found", "mx.example.net", 2, 0, []],
        ["no-policy-found", "example.net", 2, 0, [["certificate-not-trusted", 2]]]
      ])
    })
  )
})
