/**
 * The mapping table of README.md#mapping, one test per row, and properties of `toOutcome` over any
 * combination of STARTTLS result, MTA-STS state and DANE state.
 */
import { assert, describe, it } from "@effect/vitest"
import { SessionOutcome } from "@tlsrpt/collector"
import { Either, FastCheck as fc, Option } from "effect"
import { Attempt, PolicyInForce } from "../src/index.js"

const STS: PolicyInForce.StsPolicyText = {
  mode: "enforce",
  lines: ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"],
  mx: ["mx.example.com"]
}
const TESTING: PolicyInForce.StsPolicyText = { ...STS, mode: "testing", lines: ["version: STSv1", "mode: testing"] }

const base: Attempt.Attempt = {
  timestamp: new Date("2024-01-09T10:00:00Z"),
  recipientDomain: "example.com",
  mxHost: "mx.example.com",
  sendingIp: "127.0.0.1",
  receivingIp: "127.0.0.1",
  greeting: "220 mx.example.com ESMTP",
  starttls: { _tag: "Secured" },
  sts: PolicyInForce.noSts,
  dane: PolicyInForce.noDane
}

/** [policy type, result, [result-type, reason]…] per row (host first, like the collector's rows). */
const summary = (a: Partial<Attempt.Attempt>) => {
  const o = Either.getOrThrow(Attempt.toOutcome({ ...base, ...a }))
  return Option.map(o, (outcome) =>
    SessionOutcome.toRows(outcome).map((r) => {
      const p = r.results[0]!
      return [
        `${r.isHost ? "host" : "recipient"} ${p.policy.policyType}`,
        p.summary.totalFailureSessionCount > 0 ? "failure" : "success",
        ...p.failureDetails.map((d) => `${d.resultType}/${d.failureReasonCode ?? ""}/${d.failedSessionCount}`)
      ]
    })
  ).pipe(Option.getOrNull)
}

describe("Attempt.toOutcome: the mapping table (README.md#mapping)", () => {
  it("valid certificate, no policy: success on both no-policy-found rows", () =>
    assert.deepStrictEqual(summary({}), [
      ["host no-policy-found", "success"],
      ["recipient no-policy-found", "success"]
    ]))

  it("valid certificate under MTA-STS enforce: sts success with the policy", () => {
    assert.deepStrictEqual(summary({ sts: { _tag: "Policy", policy: STS } }), [
      ["host no-policy-found", "success"],
      ["recipient sts", "success"]
    ])
    const o = Option.getOrThrow(Either.getOrThrow(Attempt.toOutcome({ ...base, sts: { _tag: "Policy", policy: STS } })))
    const row = SessionOutcome.toRows(o)[1]!.results[0]!
    assert.deepStrictEqual(row.policy.policyString, STS.lines)
    assert.deepStrictEqual(row.policy.mxHost, STS.mx)
  })

  it("STARTTLS not offered: starttls-not-supported on both, counted as a failure", () =>
    assert.deepStrictEqual(summary({ starttls: { _tag: "NotOffered" } }), [
      ["host no-policy-found", "failure", "starttls-not-supported//1"],
      ["recipient no-policy-found", "failure", "starttls-not-supported//1"]
    ]))

  it("STARTTLS answered 454: smtp-starttls-reply-code-454", () =>
    assert.deepStrictEqual(summary({ starttls: { _tag: "Rejected", replyCode: 454 } }), [
      ["host no-policy-found", "failure", "starttls-not-supported/smtp-starttls-reply-code-454/1"],
      ["recipient no-policy-found", "failure", "starttls-not-supported/smtp-starttls-reply-code-454/1"]
    ]))

  it("opportunistic, certificate expired (authorizationError): detail on the recipient row, session succeeds", () =>
    assert.deepStrictEqual(summary({ starttls: { _tag: "Secured", authorizationError: "CERT_HAS_EXPIRED" } }), [
      ["host no-policy-found", "success"],
      ["recipient no-policy-found", "success", "certificate-expired//1"]
    ]))

  it("MTA-STS testing, untrusted certificate: detail, session still succeeds", () =>
    assert.deepStrictEqual(
      summary({
        sts: { _tag: "Policy", policy: TESTING },
        mxHost: "mx.example.com",
        starttls: { _tag: "Secured", authorizationError: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }
      }),
      [
        ["host no-policy-found", "success"],
        ["recipient sts", "success", "certificate-not-trusted//1"]
      ]
    ))

  it("MTA-STS testing whose mx: does not list the host: detail, the session is delivered and counted", () =>
    assert.deepStrictEqual(summary({ mxHost: "mx.other.example", sts: { _tag: "Policy", policy: TESTING } }), [
      ["host no-policy-found", "success"],
      ["recipient sts", "success", "validation-failure/mtasts-policy-mx-mismatch/1"]
    ]))

  it("MTA-STS enforce, host name mismatch (authorizationError): failure on both, detail on the recipient row", () =>
    assert.deepStrictEqual(
      summary({
        sts: { _tag: "Policy", policy: STS },
        starttls: { _tag: "Secured", authorizationError: "ERR_TLS_CERT_ALTNAME_INVALID" }
      }),
      [
        ["host no-policy-found", "failure"],
        ["recipient sts", "failure", "certificate-host-mismatch//1"]
      ]
    ))

  it("handshake refused for a certificate (rejectUnauthorized): failure on both, detail on the recipient row", () =>
    assert.deepStrictEqual(
      summary({ starttls: { _tag: "HandshakeFailed", error: { code: "ESOCKET", originalCode: "CERT_HAS_EXPIRED" } } }),
      [
        ["host no-policy-found", "failure"],
        ["recipient no-policy-found", "failure", "certificate-expired//1"]
      ]
    ))

  it("handshake failed otherwise (alert): failure and detail on both", () =>
    assert.deepStrictEqual(
      summary({
        starttls: {
          _tag: "HandshakeFailed",
          error: { code: "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE", message: "SSL alert number 40" }
        }
      }),
      [
        ["host no-policy-found", "failure", "validation-failure/tls-remote-alert-40-handshake-failure/1"],
        ["recipient no-policy-found", "failure", "validation-failure/tls-remote-alert-40-handshake-failure/1"]
      ]
    ))

  it("alert on the first read after the handshake: failure and detail on both", () =>
    assert.deepStrictEqual(
      summary({
        starttls: {
          _tag: "Secured",
          errorAfterHandshake: { code: "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED", message: "SSL alert number 49" }
        }
      }),
      [
        ["host no-policy-found", "failure", "validation-failure/tls-remote-alert-49-access-denied/1"],
        ["recipient no-policy-found", "failure", "validation-failure/tls-remote-alert-49-access-denied/1"]
      ]
    ))

  it("MTA-STS enforce whose mx: does not list the host: recipient failure with mtasts-policy-mx-mismatch, no host row", () =>
    assert.deepStrictEqual(summary({ mxHost: "mx.other.example", sts: { _tag: "Policy", policy: STS } }), [
      ["recipient sts", "failure", "validation-failure/mtasts-policy-mx-mismatch/1"]
    ]))

  it("… also when the MTA never connected (NotReached)", () =>
    assert.deepStrictEqual(
      summary({ mxHost: "mx.other.example", sts: { _tag: "Policy", policy: STS }, starttls: { _tag: "NotReached" } }),
      [["recipient sts", "failure", "validation-failure/mtasts-policy-mx-mismatch/1"]]
    ))

  it("MTA-STS wildcard matches one label only (RFC 8461 §4.1)", () => {
    const wild = { ...STS, mx: ["*.example.com"] }
    assert.isTrue(PolicyInForce.mxMatches("mx1.example.com", wild))
    assert.isFalse(PolicyInForce.mxMatches("a.mx1.example.com", wild))
    assert.isFalse(PolicyInForce.mxMatches("example.com", wild))
  })

  it("MTA-STS policy could not be fetched (404): sts with empty policy and sts-policy-fetch-error/no-policy-served", () =>
    assert.deepStrictEqual(
      summary({
        sts: { _tag: "Failed", failure: { resultType: "sts-policy-fetch-error", reasonCode: "no-policy-served" } }
      }),
      [
        ["host no-policy-found", "success"],
        ["recipient sts", "success", "sts-policy-fetch-error/no-policy-served/1"]
      ]
    ))

  it("cached policy after a failed refresh: the policy stays, detail with +fallback-to-cached-policy", () =>
    assert.deepStrictEqual(
      summary({
        sts: {
          _tag: "Policy",
          policy: STS,
          failure: { resultType: "sts-policy-fetch-error", reasonCode: "cannot-fetch-policy+fallback-to-cached-policy" }
        }
      }),
      [
        ["host no-policy-found", "success"],
        ["recipient sts", "success", "sts-policy-fetch-error/cannot-fetch-policy+fallback-to-cached-policy/1"]
      ]
    ))

  it("connection never reached EHLO: no outcome", () => assert.isNull(summary({ starttls: { _tag: "NotReached" } })))

  it("IP-literal recipient: no outcome", () => assert.isNull(summary({ recipientDomain: "[192.0.2.1]" })))

  const tlsa = (records: ReadonlyArray<string>, extra: object = {}): PolicyInForce.DaneState => ({
    _tag: "Tlsa",
    records,
    baseDomain: "mx.example.com",
    dnssecValidated: true,
    ...extra
  })

  it("DANE, certificate matched: tlsa success; the recipient no-policy-found row is dropped for the same domain", () =>
    assert.deepStrictEqual(
      summary({ recipientDomain: "mx.example.com", dane: tlsa(["3 1 1 ab"], { matched: true }) }),
      [["host tlsa", "success"]]
    ))

  it("DANE, no record matches: validation-failure/dane-no-match on the host row, failure on both", () =>
    assert.deepStrictEqual(summary({ dane: tlsa(["3 1 1 ab"], { matched: false }) }), [
      ["host tlsa", "failure", "validation-failure/dane-no-match/1"],
      ["recipient no-policy-found", "failure"]
    ]))

  it("DANE, all records unusable: tlsa-invalid/all-unusable-records+ignored with failed-session-count 0", () =>
    assert.deepStrictEqual(summary({ dane: tlsa(["1 1 1 ab"]) }), [
      ["host tlsa", "success", "tlsa-invalid/all-unusable-records+ignored/0"],
      ["recipient no-policy-found", "success"]
    ]))

  it("TLSA records not DNSSEC-validated: no-policy-found for the host", () =>
    assert.deepStrictEqual(summary({ dane: tlsa(["3 1 1 ab"], { dnssecValidated: false, matched: false }) }), [
      ["host no-policy-found", "success"],
      ["recipient no-policy-found", "success"]
    ]))

  it("greeting: the code and separator are dropped (receiving-mx-helo)", () => {
    assert.strictEqual(Attempt.greetingText("220 mx.example.com ESMTP ready"), "mx.example.com ESMTP ready")
    assert.strictEqual(Attempt.greetingText("220-mx.example.com first\r\n220 second"), "mx.example.com first")
    const o = Option.getOrThrow(Either.getOrThrow(Attempt.toOutcome(base)))
    assert.strictEqual(o.mxGreeting, "mx.example.com ESMTP")
  })

  it("a host name that is not a domain: InvalidOutcome, not a throw", () =>
    assert.isTrue(Either.isLeft(Attempt.toOutcome({ ...base, mxHost: "not a host" }))))
})

const startTls: fc.Arbitrary<Attempt.StartTls> = fc.oneof(
  fc.constant({ _tag: "NotReached" as const }),
  fc.constant({ _tag: "NotOffered" as const }),
  fc.integer({ min: 400, max: 599 }).map((replyCode) => ({ _tag: "Rejected" as const, replyCode })),
  fc
    .constantFrom("CERT_HAS_EXPIRED", "ECONNRESET", "ERR_SSL_WRONG_VERSION_NUMBER", "X")
    .map((code) => ({ _tag: "HandshakeFailed" as const, error: { code } })),
  fc.record({
    _tag: fc.constant("Secured" as const),
    authorizationError: fc.option(fc.constantFrom("CERT_HAS_EXPIRED", "DEPTH_ZERO_SELF_SIGNED_CERT"), {
      nil: undefined
    })
  })
)
const sts: fc.Arbitrary<PolicyInForce.StsState> = fc.oneof(
  fc.constant(PolicyInForce.noSts),
  fc.constantFrom(STS, TESTING).map((policy) => ({ _tag: "Policy" as const, policy })),
  fc.constant({
    _tag: "Failed" as const,
    failure: { resultType: "sts-policy-fetch-error" as const, reasonCode: "cannot-fetch-policy" }
  })
)
const dane: fc.Arbitrary<PolicyInForce.DaneState> = fc.oneof(
  fc.constant(PolicyInForce.noDane),
  fc.record({
    _tag: fc.constant("Tlsa" as const),
    records: fc.array(fc.constantFrom("3 1 1 ab", "2 0 1 cd", "0 0 1 ef"), { maxLength: 3 }),
    baseDomain: fc.constant("mx.example.com"),
    dnssecValidated: fc.boolean(),
    matched: fc.option(fc.boolean(), { nil: undefined })
  })
)

describe("Attempt.toOutcome: properties", () => {
  it.prop(
    "every outcome is valid, counts one session per row, and has a host row unless enforce refused the host",
    [startTls, sts, dane, fc.constantFrom("mx.example.com", "mx.other.example")],
    ([starttls, s, d, mxHost]) => {
      const result = Attempt.toOutcome({ ...base, mxHost, starttls, sts: s, dane: d })
      assert.isTrue(Either.isRight(result))
      const outcome = Either.getOrThrow(result)
      const refused = s._tag === "Policy" && s.policy.mode === "enforce" && mxHost !== "mx.example.com"
      if (Option.isNone(outcome)) return assert.isTrue(starttls._tag === "NotReached" && !refused)
      assert.isUndefined(SessionOutcome.check(outcome.value))
      const rows = SessionOutcome.toRows(outcome.value)
      for (const r of rows) {
        const sum = r.results[0]!.summary
        assert.strictEqual(sum.totalSuccessfulSessionCount + sum.totalFailureSessionCount, 1)
      }
      assert.strictEqual(
        rows.some((r) => r.isHost),
        !refused
      )
      // a session without TLS never counts as a success
      if (starttls._tag === "NotOffered" || starttls._tag === "Rejected" || starttls._tag === "HandshakeFailed")
        for (const r of rows) assert.strictEqual(r.results[0]!.summary.totalFailureSessionCount, 1)
    }
  )
})
