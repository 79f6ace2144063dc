/**
 * What one outgoing SMTP session saw, and its `SessionOutcome` (the rows the Collector records). The
 * mapping follows mox's collection side (queue/direct.go, smtpclient) where Node can observe the same
 * thing; the table with the test of each row is in packages/outcome/README.md#mapping.
 */
import { type InvalidOutcome, SessionOutcome } from "@tlsrpt/collector"
import { Either, Option } from "effect"
import { type DaneState, isUsableTlsa, mxMatches, type PolicyFailure, type StsState } from "./PolicyInForce.js"
import * as TlsFailure from "./TlsFailure.js"

/** How far the session got with STARTTLS (RFC 3207). */
export type StartTls =
  /**
   * The session ended before EHLO was answered (connection refused, no greeting), or was never
   * opened: no TLS session, no outcome, except for a host an enforced MTA-STS policy refused.
   */
  | { readonly _tag: "NotReached" }
  /** The server did not offer STARTTLS in its EHLO reply. */
  | { readonly _tag: "NotOffered" }
  /** STARTTLS was answered with something other than 220. */
  | { readonly _tag: "Rejected"; readonly replyCode: number }
  /** The handshake failed (the error as Node or nodemailer gave it). */
  | { readonly _tag: "HandshakeFailed"; readonly error: unknown }
  | {
      readonly _tag: "Secured"
      /** The socket's `authorizationError` (PKIX verification against the host name), if any. */
      readonly authorizationError?: string | undefined
      /** An error on the first read after the handshake (an alert from the server), if any. */
      readonly errorAfterHandshake?: unknown
    }

export interface Attempt {
  readonly timestamp: Date
  /** A domain (any IDNA spelling) or an IP literal (which records nothing, RFC 8460 §3). */
  readonly recipientDomain: string
  readonly mxHost: string
  readonly sendingIp?: string | undefined
  readonly receivingIp?: string | undefined
  /** The server's greeting as received (`220 mx.example ESMTP …`), or without the code. */
  readonly greeting?: string | undefined
  readonly starttls: StartTls
  readonly sts: StsState
  readonly dane: DaneState
  readonly isTlsReport?: boolean | undefined
  readonly isDmarcReport?: boolean | undefined
}

type Detail = { resultType: PolicyFailure["resultType"]; reasonCode?: string; failedSessionCount?: number }
type PolicyJson = SessionOutcome.SessionOutcomeJson["policies"][number]

const detail = (f: PolicyFailure, failedSessionCount?: number): Detail => ({
  resultType: f.resultType,
  ...(f.reasonCode === "" ? {} : { reasonCode: f.reasonCode }),
  ...(failedSessionCount === undefined ? {} : { failedSessionCount })
})

/** mox: the greeting without its `220` code and separator, first line only (RFC 8460 §4.3 receiving-mx-helo). */
export const greetingText = (greeting: string): string =>
  (greeting.split(/\r?\n/)[0] ?? "").replace(/^220(?:[ -]|$)/, "").trim()

/**
 * The outcome of one attempt; `None` when no TLS session was attempted (`NotReached`) or when the
 * recipient is an IP literal. `InvalidOutcome` when the facts do not make a valid outcome (a host
 * name that is not a domain, an address that is not an IP).
 */
export const toOutcome = (a: Attempt): Either.Either<Option.Option<SessionOutcome.SessionOutcome>, InvalidOutcome> => {
  if (SessionOutcome.isIpLiteral(a.recipientDomain)) return Either.right(Option.none())
  const recipient: Array<Detail> = []
  const host: Array<Detail> = []
  let failed = false
  let hostSkipped = false

  // Recipient-domain side: MTA-STS (mox queue/direct.go).
  const sts = a.sts
  if (sts._tag === "Failed") recipient.push(detail(sts.failure))
  if (sts._tag === "Policy") {
    if (sts.failure !== undefined) recipient.push(detail(sts.failure))
    if (!mxMatches(a.mxHost, sts.policy)) {
      recipient.push({ resultType: "validation-failure", reasonCode: "mtasts-policy-mx-mismatch" })
      // enforce: the host must not be used (RFC 8461 §5); mox skips it and counts a failure.
      if (sts.policy.mode === "enforce") {
        failed = true
        hostSkipped = true
      }
    }
  }
  const stsEnforced = sts._tag === "Policy" && sts.policy.mode === "enforce"
  // No TLS session was attempted: nothing to count, unless the policy itself refused the host.
  if (a.starttls._tag === "NotReached" && !hostSkipped) return Either.right(Option.none())

  // Host side: DANE (RFC 7672). Records that are not DNSSEC-validated are no policy.
  const dane = a.dane._tag === "Tlsa" && a.dane.dnssecValidated ? a.dane : undefined
  const daneUsable = dane?.records.some(isUsableTlsa) === true
  if (dane !== undefined && !daneUsable)
    // mox: all records unusable → detail with failed-session-count 0, STARTTLS still required.
    host.push({ resultType: "tlsa-invalid", reasonCode: "all-unusable-records+ignored", failedSessionCount: 0 })

  if (!hostSkipped) {
    const s = a.starttls
    switch (s._tag) {
      case "NotOffered": {
        // mox adds the detail without counting; a SessionOutcome counts every session, and a session
        // without TLS is not a successful TLS session (RFC 8460 §4.3.2.1 starttls-not-supported).
        const d: Detail = { resultType: "starttls-not-supported" }
        recipient.push(d)
        host.push(d)
        failed = true
        break
      }
      case "Rejected": {
        const d: Detail = {
          resultType: "starttls-not-supported",
          reasonCode: `smtp-starttls-reply-code-${s.replyCode}`
        }
        recipient.push(d)
        host.push(d)
        failed = true
        break
      }
      case "HandshakeFailed": {
        const f = TlsFailure.fromError(s.error)
        // mox: a certificate finding goes to the recipient-domain result only; both count the failure.
        recipient.push(detail(f))
        if (f.kind === "handshake") host.push(detail(f))
        failed = true
        break
      }
      case "Secured": {
        if (s.authorizationError !== undefined) {
          recipient.push(detail(TlsFailure.fromVerificationCode(s.authorizationError)))
          // RFC 8461 §5: enforce fails the session on a certificate that does not verify.
          if (stsEnforced) failed = true
        }
        if (daneUsable && dane?.matched === false) {
          host.push({ resultType: "validation-failure", reasonCode: "dane-no-match" })
          failed = true
        }
        if (s.errorAfterHandshake !== undefined) {
          const f = TlsFailure.fromError(s.errorAfterHandshake)
          recipient.push(detail(f))
          host.push(detail(f))
          failed = true
        }
        break
      }
    }
  }

  const result = failed ? "failure" : "success"
  const withDetails = (details: ReadonlyArray<Detail>) => (details.length === 0 ? {} : { failureDetails: details })
  const policies: Array<PolicyJson> = []
  if (!hostSkipped) {
    policies.push(
      dane === undefined
        ? { type: "no-policy-found", scope: "mx-host", result, ...withDetails(host) }
        : { type: "tlsa", records: [...dane.records], baseDomain: dane.baseDomain, result, ...withDetails(host) }
    )
  }
  policies.push(
    sts._tag === "None"
      ? { type: "no-policy-found", scope: "recipient-domain", result, ...withDetails(recipient) }
      : {
          type: "sts",
          ...(sts._tag === "Policy" ? { policyLines: [...sts.policy.lines], mxPatterns: [...sts.policy.mx] } : {}),
          result,
          ...withDetails(recipient)
        }
  )
  const greeting = a.greeting === undefined ? "" : greetingText(a.greeting)
  return Either.map(
    SessionOutcome.decodeOutcome({
      timestamp: a.timestamp.getTime(),
      recipientDomain: a.recipientDomain,
      mxHost: a.mxHost,
      ...(a.sendingIp ? { sendingIp: a.sendingIp } : {}),
      ...(a.receivingIp ? { receivingIp: a.receivingIp } : {}),
      ...(greeting ? { mxGreeting: greeting } : {}),
      ...(a.isTlsReport ? { isTlsReport: true } : {}),
      ...(a.isDmarcReport ? { isDmarcReport: true } : {}),
      policies
    }),
    Option.some
  )
}
