/**
 * What an MTA reports for ONE SMTP/TLS session of an outgoing delivery, and its conversion to result
 * rows (docs/design.md#rows-of-an-outcome). The encoded form is the JSON-lines format of `tlsrpt record FILE`:
 *
 * ```json
 * { "timestamp": "2024-01-09T10:00:00Z",          // RFC 3339, or epoch milliseconds
 *   "recipientDomain": "example.com",             // a domain (any IDNA spelling) or an IP literal
 *   "mxHost": "mx1.example.com",
 *   "sendingIp": "192.0.2.1", "receivingIp": "198.51.100.7",      // optional
 *   "mxGreeting": "mx1.example.com ESMTP",        // optional: the 220 line without the code
 *   "isTlsReport": false, "isDmarcReport": false,  // optional, default false
 *   "policies": [
 *     { "type": "sts", "policyLines": ["version: STSv1", "mode: enforce", "mx: *.example.com", "max_age: 86400"],
 *       "mxPatterns": ["*.example.com"], "result": "success" },
 *     { "type": "tlsa", "records": ["3 1 1 8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d"],
 *       "baseDomain": "mx1.example.com", "result": "failure",
 *       "failureDetails": [{ "resultType": "validation-failure", "reasonCode": "dane-no-match" }] }
 *   ] }
 * ```
 *
 * Policies are a union tagged by `type`: `sts` (policy lines, mx patterns), `tlsa` (records in
 * presentation form, TLSA base domain) and `no-policy-found` with a `scope` saying whose it is
 * (`recipient-domain` or `mx-host`; `domain` defaults to the recipient domain or the MX host). A
 * session carries at most one recipient-domain policy (`sts` or recipient `no-policy-found`) and at
 * most one host policy (`tlsa` or host `no-policy-found`), and at least one policy.
 *
 * Counting (one session is one TLS session, docs/design.md#rows-of-an-outcome): `result: "success"` adds 1 to the policy's
 * successful-session count, `"failure"` adds 1 to its failure count. Each entry of `failureDetails`
 * becomes a failure detail whatever the result (a PKIX failure on an opportunistic session that
 * succeeded still reports, docs/design.md#session-failure-details), with `failedSessionCount` 1 unless given (0 for mox's
 * `all-unusable-records` detail, docs/design.md#host-rows). Detail fields: `resultType` (IANA, RFC 8460 §4.3),
 * optional `reasonCode`, `additionalInformation`, `failedSessionCount`; the session supplies
 * sending-mta-ip, receiving-ip, receiving-mx-hostname (MX host A-label) and receiving-mx-helo.
 *
 * Strings must not contain CR or LF; unknown keys are refused (a typo must not pass silently).
 */
import { Day, Domain, PolicyResult, Report } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import { type Brand, Either, ParseResult, Schema, type SchemaAST } from "effect"
import { InvalidOutcome } from "./InvalidOutcome.js"
// The rules the Schema is built from; internal/OutcomeCheck.ts applies the same ones to typed input.
import * as Rules from "./internal/OutcomeRules.js"

export { InvalidOutcome }
export { isHostPolicy, isIpLiteral } from "./internal/OutcomeRules.js"
export { check } from "./internal/OutcomeCheck.js"

/** Free text that ends up in reports and logs: CR and LF are refused (header and log injection). */
export const Text = Schema.String.pipe(Schema.filter(Rules.isText, { message: () => Rules.NO_CRLF }))

export const IpAddress = Schema.String.pipe(
  Schema.filter(Rules.isIpAddress, { message: (i) => `not an IP address: ${JSON.stringify(i.actual)}` })
)

/** RFC 5321 §4.1.3 address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) or a bare address. */
export type IpLiteral = string & Brand.Brand<"IpLiteral">

const IpLiteralFromSelf = Schema.String.pipe(Schema.filter(Rules.isIpLiteral), Schema.brand("IpLiteral"))

const domainIssue = (ast: SchemaAST.AST, s: string, e: Domain.DomainError) => new ParseResult.Type(ast, s, e.message)

/**
 * The recipient domain; an IP literal is accepted and produces no rows (docs/design.md#rows-of-an-outcome: deliveries to
 * IP literals record nothing).
 */
export const RecipientDomain: Schema.Schema<Domain.Domain | IpLiteral, string> = Schema.transformOrFail(
  Schema.String,
  Schema.Union(Domain.DomainFromSelf, IpLiteralFromSelf),
  {
    strict: true,
    decode: (s, _, ast) =>
      Rules.isIpLiteral(s)
        ? ParseResult.succeed(s as IpLiteral)
        : Either.match(Domain.parse(s), {
            onLeft: (e) => ParseResult.fail(domainIssue(ast, s, e)),
            onRight: (d) => ParseResult.succeed(d)
          }),
    encode: (v) => ParseResult.succeed(typeof v === "string" ? v : v.ascii)
  }
)

/** RFC 3339 text (encoded form) or epoch milliseconds, 1970 to 9999; the row's day is its UTC day. */
export const Timestamp: Schema.Schema<Date, string | number> = Schema.Union(
  Report.DateTime,
  Schema.DateFromNumber
).pipe(Schema.filter((d) => Rules.isValidTime(d.getTime()), { message: () => Rules.TIME_EXPECTED }))

/** Presentation form `<usage> <selector> <matching type> <hex>` (docs/design.md#report-fields). */
export const TlsaRecord = Schema.String.pipe(
  Schema.filter((s) => Rules.TLSA_RECORD.test(s), {
    message: (i) => `not a TLSA record "<usage> <selector> <matching-type> <hex>": ${JSON.stringify(i.actual)}`
  })
)

export const SessionResult = Schema.Literal("success", "failure")
export type SessionResult = typeof SessionResult.Type

export const FailureDetail = Schema.Struct({
  /** IANA result type (RFC 8460 §4.3); nothing else is accepted (docs/design.md#result-types). */
  resultType: PolicyResult.ResultType,
  /** → `failure-reason-code` */
  reasonCode: Schema.optional(Text),
  /** → `additional-information` */
  additionalInformation: Schema.optional(Text),
  /** → `failed-session-count`; default 1. */
  failedSessionCount: Schema.optional(PolicyResult.InputCount)
})
export type FailureDetail = typeof FailureDetail.Type

const outcomeFields = {
  result: SessionResult,
  failureDetails: Schema.optional(Schema.Array(FailureDetail))
}

/** MTA-STS (RFC 8461) in mode testing or enforce; policy domain = recipient domain. */
export const StsPolicy = Schema.Struct({
  type: Schema.Literal("sts"),
  /** The policy file's lines (→ `policy-string`); empty when the policy could not be fetched. */
  policyLines: Schema.optional(Schema.Array(Text)),
  /** The policy's `mx` patterns (→ `mx-host`), `*.example.com` for wildcards. */
  mxPatterns: Schema.optional(Schema.Array(Text)),
  ...outcomeFields
})
export type StsPolicy = typeof StsPolicy.Type

/** DANE (RFC 7672); policy domain = the TLSA base domain (the MX host or its secure CNAME target). */
export const TlsaPolicy = Schema.Struct({
  type: Schema.Literal("tlsa"),
  /** Records in presentation form; sorted when stored so equal sets merge (docs/design.md#result-constructors). */
  records: Schema.Array(TlsaRecord),
  baseDomain: Domain.FromString,
  ...outcomeFields
})
export type TlsaPolicy = typeof TlsaPolicy.Type

export const NoPolicyFound = Schema.Struct({
  type: Schema.Literal("no-policy-found"),
  /** `recipient-domain`: no MTA-STS; `mx-host`: no DNSSEC-secure TLSA for the MX host. */
  scope: Schema.Literal("recipient-domain", "mx-host"),
  /** Default: the recipient domain or the MX host, by scope. */
  domain: Schema.optional(Domain.FromString),
  ...outcomeFields
})
export type NoPolicyFound = typeof NoPolicyFound.Type

export const SessionPolicy = Schema.Union(StsPolicy, TlsaPolicy, NoPolicyFound)
export type SessionPolicy = typeof SessionPolicy.Type

export const SessionOutcome = Schema.Struct({
  timestamp: Timestamp,
  recipientDomain: RecipientDomain,
  /** The MX host the session went to (→ `receiving-mx-hostname`, as A-label). */
  mxHost: Domain.FromString,
  /** Local address of the TCP connection (→ `sending-mta-ip`). */
  sendingIp: Schema.optional(IpAddress),
  /** Remote address (→ `receiving-ip`). */
  receivingIp: Schema.optional(IpAddress),
  /** The greeting line without `220` and separator (→ `receiving-mx-helo`, docs/design.md#session-failure-details). */
  mxGreeting: Schema.optional(Text),
  /** The message is itself a TLS report: its results never trigger a report (docs/design.md#send-report-flag). */
  isTlsReport: Schema.optional(Schema.Boolean),
  /** The message is a DMARC report: its results trigger a report only with a failure (docs/design.md#send-report-flag). */
  isDmarcReport: Schema.optional(Schema.Boolean),
  policies: Schema.Array(SessionPolicy).pipe(Schema.filter(Rules.policiesIssue))
})
export type SessionOutcome = typeof SessionOutcome.Type
/** The JSON shape (one line of `tlsrpt record FILE`). */
export type SessionOutcomeJson = typeof SessionOutcome.Encoded

// ---------------------------------------------------------------------------------------------------
// Decoding untrusted input

const decodeEither = Schema.decodeUnknownEither(SessionOutcome, { errors: "first", onExcessProperty: "error" })

const toInvalid = (e: ParseResult.ParseError): InvalidOutcome => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
  return new InvalidOutcome({
    reason: issue?.message ?? ParseResult.TreeFormatter.formatErrorSync(e),
    field: issue === undefined ? "" : Rules.formatPath(issue.path)
  })
}

/** Decodes an outcome from a parsed JSON value (or any untrusted object). Unknown keys are refused. */
export const decodeOutcome = (input: unknown): Either.Either<SessionOutcome, InvalidOutcome> =>
  Either.mapLeft(decodeEither(input), toInvalid)

/** Decodes one JSON line. */
export const decodeOutcomeJson = (line: string): Either.Either<SessionOutcome, InvalidOutcome> => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (e) {
    return Either.left(new InvalidOutcome({ reason: `not JSON: ${(e as Error).message}`, field: "" }))
  }
  return decodeOutcome(value)
}

/** The JSON shape of an outcome (for writing JSON lines). */
export const encodeOutcome: (outcome: SessionOutcome) => SessionOutcomeJson = Schema.encodeSync(SessionOutcome)

// ---------------------------------------------------------------------------------------------------
// Conversion to result rows (docs/design.md#rows-of-an-outcome)

const dayOfMillis = Day.makeFromMillisCached()

/** The UTC day of an instant (docs/design.md#rows-of-an-outcome DayUTC). */
export const dayOf = (ts: Date): Day.Day => dayOfMillis(ts.getTime())

type MutableDetails = { -readonly [K in keyof PolicyResult.FailureDetails]: PolicyResult.FailureDetails[K] }

/** docs/design.md#session-failure-details: details carry the session's addresses, the MX host (A-label) and its greeting. */
const failureDetails = (
  o: SessionOutcome,
  details: ReadonlyArray<FailureDetail>
): ReadonlyArray<PolicyResult.FailureDetails> => {
  if (details.length === 0) return NO_DETAILS
  const out: Array<PolicyResult.FailureDetails> = []
  for (const d of details) {
    const fd: MutableDetails = { resultType: d.resultType, failedSessionCount: d.failedSessionCount ?? 1 }
    if (o.sendingIp) fd.sendingMtaIp = o.sendingIp
    fd.receivingMxHostname = o.mxHost.ascii
    // mox omits an empty greeting (docs/design.md#session-failure-details); empty reason and information are omitted too (docs/design.md#conservative-json).
    if (o.mxGreeting) fd.receivingMxHelo = o.mxGreeting
    if (o.receivingIp) fd.receivingIp = o.receivingIp
    if (d.additionalInformation) fd.additionalInformation = d.additionalInformation
    if (d.reasonCode) fd.failureReasonCode = d.reasonCode
    out.push(fd)
  }
  return out
}

const EMPTY: ReadonlyArray<string> = []

// docs/design.md#tlsa-hex-case: hex in lower case, as mox prints TLSA records, so that one record
// spelled in two cases is one policy and merges; then sorted (docs/design.md#result-constructors).
const lowerHex = (record: string): string => (/[A-F]/.test(record) ? record.toLowerCase() : record)
const sortedRecords = (records: ReadonlyArray<string>): ReadonlyArray<string> =>
  records.length > 1 ? records.map(lowerHex).sort() : records.length === 1 ? [lowerHex(records[0]!)] : records

/** The policy domain of a session policy. */
export const policyDomainOf = (o: SessionOutcome, p: SessionPolicy): Domain.Domain => {
  switch (p.type) {
    case "sts":
      return o.recipientDomain as Domain.Domain
    case "tlsa":
      return p.baseDomain
    case "no-policy-found":
      return p.domain ?? (p.scope === "mx-host" ? o.mxHost : (o.recipientDomain as Domain.Domain))
  }
}

/**
 * One row with its single result, as `forEachRow` hands it over: ONE reused object, valid only during
 * the call (the collector's hot path allocates nothing per row this way). Copy what you keep.
 */
export interface RowView {
  policyDomain: Domain.Domain
  day: Day.Day
  recipientDomain: Domain.Domain
  isHost: boolean
  sendReport: boolean
  policyType: PolicyResult.PolicyType
  policyString: ReadonlyArray<string>
  mxHost: ReadonlyArray<string>
  success: number
  failure: number
  failureDetails: ReadonlyArray<PolicyResult.FailureDetails>
}

const view: RowView = {
  policyDomain: undefined as unknown as Domain.Domain,
  day: "" as Day.Day,
  recipientDomain: undefined as unknown as Domain.Domain,
  isHost: false,
  sendReport: false,
  policyType: "sts",
  policyString: EMPTY,
  mxHost: EMPTY,
  success: 0,
  failure: 0,
  failureDetails: []
}

const NO_DETAILS: ReadonlyArray<PolicyResult.FailureDetails> = []

const emit = (
  o: SessionOutcome,
  p: SessionPolicy,
  policyDomain: Domain.Domain,
  isHost: boolean,
  sink: (row: RowView) => void
): void => {
  view.policyDomain = policyDomain
  view.isHost = isHost
  view.policyType = p.type
  if (p.type === "sts") {
    view.policyString = p.policyLines ?? EMPTY
    view.mxHost = p.mxPatterns ?? EMPTY
  } else {
    view.policyString = p.type === "tlsa" ? sortedRecords(p.records) : EMPTY
    view.mxHost = EMPTY
  }
  const failed = p.result === "failure"
  view.success = failed ? 0 : 1
  view.failure = failed ? 1 : 0
  view.failureDetails = p.failureDetails === undefined ? NO_DETAILS : failureDetails(o, p.failureDetails)
  sink(view)
}

/**
 * docs/design.md#rows-of-an-outcome: one row per host policy (isHost), then the recipient-domain row, except that a
 * recipient `no-policy-found` is dropped beside a `tlsa` host result for the same domain (docs/design.md#rows-of-an-outcome).
 * `sendReport = !isTlsReport && (!isDmarcReport || failure)`, failure = any policy's failure count > 0
 * (details alone do not count). Day = the UTC day of the timestamp. An IP-literal recipient gives none.
 * Returns the number of rows. The outcome must be valid (`check` / `decodeOutcome`).
 */
export const forEachRow = (o: SessionOutcome, sink: (row: RowView) => void): number => {
  if (typeof o.recipientDomain === "string") return 0
  const policies = o.policies
  let failure = false
  let recipientPolicy: SessionPolicy | undefined
  let hostPolicy: SessionPolicy | undefined
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!
    if (p.result === "failure") failure = true
    if (Rules.isHostPolicy(p)) hostPolicy = p
    else recipientPolicy = p
  }
  view.day = dayOf(o.timestamp)
  view.recipientDomain = o.recipientDomain
  view.sendReport = !o.isTlsReport && (!o.isDmarcReport || failure)
  let rows = 0
  let tlsaDomain: string | undefined
  if (hostPolicy !== undefined) {
    const domain = policyDomainOf(o, hostPolicy)
    if (hostPolicy.type === "tlsa") tlsaDomain = domain.ascii
    emit(o, hostPolicy, domain, true, sink)
    rows++
  }
  if (recipientPolicy !== undefined) {
    const domain = policyDomainOf(o, recipientPolicy)
    if (!(recipientPolicy.type === "no-policy-found" && tlsaDomain === domain.ascii)) {
      emit(o, recipientPolicy, domain, false, sink)
      rows++
    }
  }
  return rows
}

/** The rows of an outcome (docs/design.md#rows-of-an-outcome, see `forEachRow`) as values. */
export const toRows = (o: SessionOutcome): ReadonlyArray<NewResultRow> => {
  const rows: Array<NewResultRow> = []
  forEachRow(o, (v) =>
    rows.push({
      policyDomain: v.policyDomain,
      day: v.day,
      recipientDomain: v.recipientDomain,
      isHost: v.isHost,
      sendReport: v.sendReport,
      results: [
        {
          policy: {
            policyType: v.policyType,
            policyString: v.policyString,
            policyDomain: v.policyDomain.ascii,
            mxHost: v.mxHost
          },
          summary: { totalSuccessfulSessionCount: v.success, totalFailureSessionCount: v.failure },
          failureDetails: v.failureDetails
        }
      ]
    })
  )
  return rows
}
