/**
 * The JSON of a report we send (RFC 8460 §4, docs/design.md#conservative-json), written out by hand
 * and without effect: the encoding a compose pool thread does for every report (mail ComposeWorker.ts),
 * which imports this module alone (`@tlsrpt/core/ReportJson`). Through the package index a thread
 * loaded effect's Schema and the rest of core (libmime, iconv-lite) for an encoding that needs none
 * of it: per thread start 0.15 s of CPU and 8 MB of heap from the bundle, 0.4 s and 16 MB from tsc's
 * output (README, issue 15).
 *
 * It equals `Schema.encodeSync(Report.Report)` then `JSON.stringify`, key order included, and admits
 * exactly what that encode admits; a property test holds the two equal, on reports and on reports
 * with any one value replaced (test/ReportJson.test.ts). The literal lists and count bounds live here
 * so the Schemas (PolicyResult.ts, Report.ts) are built from them and cannot drift.
 */

/** RFC 8460 §4.4 policy-type. */
export const POLICY_TYPES = ["tlsa", "sts", "no-policy-found"] as const
export type PolicyType = (typeof POLICY_TYPES)[number]

/** The IANA "STARTTLS Validation Result Types" (RFC 8460 §4.3); never invent one (docs/design.md#result-types). */
export const RESULT_TYPES = [
  "starttls-not-supported",
  "certificate-host-mismatch",
  "certificate-expired",
  "tlsa-invalid",
  "dnssec-invalid",
  "dane-required",
  "certificate-not-trusted",
  "sts-policy-invalid",
  "sts-webpki-invalid",
  "validation-failure",
  "sts-policy-fetch-error"
] as const
export type ResultType = (typeof RESULT_TYPES)[number]

/**
 * The largest count a sum reaches: sums saturate here instead of leaving the safe-integer range,
 * where JSON numbers stop being exact and the encoder would refuse them.
 */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER

const POLICY_TYPE_SET: ReadonlySet<unknown> = new Set(POLICY_TYPES)
const RESULT_TYPE_SET: ReadonlySet<unknown> = new Set(RESULT_TYPES)

/** `u` is one of the policy types: the fast form of `Schema.is(PolicyResult.PolicyType)` for hot paths. */
export const isPolicyType = (u: unknown): u is PolicyType => POLICY_TYPE_SET.has(u)

/** `u` is one of the IANA result types: the fast form of `Schema.is(PolicyResult.ResultType)`. */
export const isResultType = (u: unknown): u is ResultType => RESULT_TYPE_SET.has(u)

/** A count as read (lenient): any non-negative integer; the Schema clamps it to `MAX_COUNT`. */
export const isCount = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0

/** The last instant a date-time field may hold (four-digit years, RFC 3339 §5.6). */
export const MAX_DATE = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** `2024-01-09T00:00:00Z`; milliseconds only when non-zero. */
export const formatDateTime = (d: Date): string => d.toISOString().replace(".000Z", "Z")

/**
 * A report outside what the `Report` Schema admits. A plain `Error`, not a `Data.TaggedError`: this
 * module loads nothing of effect, and a compose thread only passes the message on.
 */
export class ReportJsonError extends Error {
  override readonly name = "ReportJsonError"
  constructor(
    /** Where, as a path into the report: `policies[0].summary.totalFailureSessionCount`. */
    readonly path: string,
    readonly expected: string
  ) {
    super(`invalid report at ${path}: expected ${expected}`)
  }
}

type Fields = Readonly<Record<string, unknown>>

// What the Schema checks, value by value: a struct is any non-null object, a date a valid `Date` in
// 1970..9999, a count a safe non-negative integer, an optional field absent or a string (an own key
// holding `undefined` is refused, as the exact optional property is by the Schema).
const record = (u: unknown, path: string): Fields => {
  if (typeof u !== "object" || u === null) throw new ReportJsonError(path, "an object")
  return u as Fields
}
const date = (u: unknown, path: string): string => {
  const t = u instanceof Date ? u.getTime() : Number.NaN
  if (!(t >= 0 && t <= MAX_DATE)) throw new ReportJsonError(path, "a valid date in 1970..9999")
  return formatDateTime(u as Date)
}
const text = (u: unknown, path: string): string => {
  if (typeof u !== "string") throw new ReportJsonError(path, "a string")
  return u
}
const count = (u: unknown, path: string): number => {
  if (!isCount(u) || u > MAX_COUNT) throw new ReportJsonError(path, "a non-negative safe integer")
  return u
}
const list = (u: unknown, path: string): ReadonlyArray<unknown> => {
  if (!Array.isArray(u)) throw new ReportJsonError(path, "an array")
  return u
}
// By index, not `every` or `map`, which skip holes: a hole is `undefined` to the Schema (refused),
// and JSON would write it as null.
const each = <A>(u: unknown, path: string, f: (item: unknown, path: string) => A): Array<A> => {
  const a = list(u, path)
  const out: Array<A> = new Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = f(a[i], `${path}[${i}]`)
  return out
}
const strings = (u: unknown, path: string): ReadonlyArray<string> => {
  const a = list(u, path)
  for (let i = 0; i < a.length; i++) text(a[i], `${path}[${i}]`)
  return a as ReadonlyArray<string>
}
const optional = (o: Fields, key: string, path: string): string | undefined =>
  Object.hasOwn(o, key) ? text(o[key], `${path}.${key}`) : undefined

/** A failure detail as written (RFC 8460 §4.4): an absent optional field has no key. */
export interface FailureDetailsJson {
  readonly "result-type": ResultType
  readonly "sending-mta-ip"?: string
  readonly "receiving-mx-hostname"?: string
  readonly "receiving-mx-helo"?: string
  readonly "receiving-ip"?: string
  readonly "failed-session-count": number
  readonly "additional-information"?: string
  readonly "failure-reason-code"?: string
}

export interface PolicyResultJson {
  readonly policy: {
    readonly "policy-type": PolicyType
    readonly "policy-string": ReadonlyArray<string>
    readonly "policy-domain": string
    readonly "mx-host": ReadonlyArray<string>
  }
  readonly summary: {
    readonly "total-successful-session-count": number
    readonly "total-failure-session-count": number
  }
  readonly "failure-details": ReadonlyArray<FailureDetailsJson>
}

/** The report as written: `Report.Report`'s encoded form, keys in the Schema's order. */
export interface Json {
  readonly "organization-name": string
  readonly "date-range": { readonly "start-datetime": string; readonly "end-datetime": string }
  readonly "contact-info": string
  readonly "report-id": string
  readonly policies: ReadonlyArray<PolicyResultJson>
}

const failureDetails = (u: unknown, path: string): FailureDetailsJson => {
  const d = record(u, path)
  const resultType = d.resultType
  if (!isResultType(resultType)) throw new ReportJsonError(`${path}.resultType`, "an IANA result type")
  const sendingMtaIp = optional(d, "sendingMtaIp", path)
  const receivingMxHostname = optional(d, "receivingMxHostname", path)
  const receivingMxHelo = optional(d, "receivingMxHelo", path)
  const receivingIp = optional(d, "receivingIp", path)
  const failed = count(d.failedSessionCount, `${path}.failedSessionCount`)
  const additionalInformation = optional(d, "additionalInformation", path)
  const failureReasonCode = optional(d, "failureReasonCode", path)
  // the Schema's key order; an absent optional field is left out (exact optional keys)
  const out: { -readonly [K in keyof FailureDetailsJson]?: FailureDetailsJson[K] } = { "result-type": resultType }
  if (sendingMtaIp !== undefined) out["sending-mta-ip"] = sendingMtaIp
  if (receivingMxHostname !== undefined) out["receiving-mx-hostname"] = receivingMxHostname
  if (receivingMxHelo !== undefined) out["receiving-mx-helo"] = receivingMxHelo
  if (receivingIp !== undefined) out["receiving-ip"] = receivingIp
  out["failed-session-count"] = failed
  if (additionalInformation !== undefined) out["additional-information"] = additionalInformation
  if (failureReasonCode !== undefined) out["failure-reason-code"] = failureReasonCode
  return out as FailureDetailsJson
}

const policyResult = (u: unknown, path: string): PolicyResultJson => {
  const r = record(u, path)
  const p = record(r.policy, `${path}.policy`)
  const policyType = p.policyType
  if (!isPolicyType(policyType)) throw new ReportJsonError(`${path}.policy.policyType`, "a policy type")
  const policyString = strings(p.policyString, `${path}.policy.policyString`)
  const policyDomain = text(p.policyDomain, `${path}.policy.policyDomain`)
  const mxHost = strings(p.mxHost, `${path}.policy.mxHost`)
  const s = record(r.summary, `${path}.summary`)
  const success = count(s.totalSuccessfulSessionCount, `${path}.summary.totalSuccessfulSessionCount`)
  const failure = count(s.totalFailureSessionCount, `${path}.summary.totalFailureSessionCount`)
  const details = each(r.failureDetails, `${path}.failureDetails`, failureDetails)
  return {
    policy: {
      "policy-type": policyType,
      "policy-string": policyString,
      "policy-domain": policyDomain,
      "mx-host": mxHost
    },
    summary: { "total-successful-session-count": success, "total-failure-session-count": failure },
    "failure-details": details
  }
}

// The input is `unknown`, not `Report.Report`: every value is checked, and a type import of Report.ts
// would close a module cycle (Report.ts builds on this module).

/** The conservative JSON object of a report, as the Schema encodes it; throws `ReportJsonError`. */
export const toJsonOrThrow = (report: unknown): Json => {
  const r = record(report, "report")
  const range = record(r.dateRange, "dateRange")
  const start = date(range.startDatetime, "dateRange.startDatetime")
  const end = date(range.endDatetime, "dateRange.endDatetime")
  return {
    "organization-name": text(r.organizationName, "organizationName"),
    "date-range": { "start-datetime": start, "end-datetime": end },
    "contact-info": text(r.contactInfo, "contactInfo"),
    "report-id": text(r.reportId, "reportId"),
    policies: each(r.policies, "policies", policyResult)
  }
}

/** The JSON object, or `undefined` for a report the Schema would refuse. */
export const toJson = (report: unknown): Json | undefined => {
  try {
    return toJsonOrThrow(report)
  } catch (e) {
    if (e instanceof ReportJsonError) return undefined
    throw e
  }
}

/** Compact JSON text of a report (the gzip attachment, the https body); throws `ReportJsonError`. */
export const encode = (report: unknown): string => JSON.stringify(toJsonOrThrow(report))
