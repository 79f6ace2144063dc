/**
 * One element of a report's `policies` (RFC 8460 §4.4): the policy applied, the session summary
 * and the failure details. The wire schemas decode leniently and encode conservatively
 * (docs/design.md#lenient-decoding, docs/design.md#conservative-json); merge and add follow docs/design.md#merge-rules exactly.
 */
import { Schema } from "effect"
import { isCount, MAX_COUNT, POLICY_TYPES, RESULT_TYPES } from "./ReportJson.js"

// The literal lists, count bounds and fast checks are ReportJson's (the Schema-free encoder a compose
// thread loads, issue 15), so the Schemas and the encoder share them.
export { isCount, isPolicyType, isResultType, MAX_COUNT } from "./ReportJson.js"

/** RFC 8460 §4.4 policy-type. */
export const PolicyType = Schema.Literal(...POLICY_TYPES)
export type PolicyType = typeof PolicyType.Type

/** The IANA "STARTTLS Validation Result Types" (RFC 8460 §4.3); never invent one (docs/design.md#result-types). */
export const ResultType = Schema.Literal(...RESULT_TYPES)
export type ResultType = typeof ResultType.Type

/**
 * The largest count accepted on input for one row or one session (`import`, `record`, the collector):
 * a billion sessions a day for one domain is beyond any real MTA, so a larger value is a mistake or
 * an attack, refused before it is summed.
 */
export const MAX_INPUT_COUNT = 1_000_000_000

/** A count as accepted on input (`MAX_INPUT_COUNT`), so sums stay exact. */
export const isInputCount = (u: unknown): u is number =>
  typeof u === "number" && Number.isSafeInteger(u) && u >= 0 && u <= MAX_INPUT_COUNT

export const INPUT_COUNT_EXPECTED = `expected a non-negative integer up to ${MAX_INPUT_COUNT}`

/** A count on input (a session's or a row's): `isInputCount` as a Schema. */
export const InputCount = Schema.Number.pipe(Schema.filter(isInputCount, { message: () => INPUT_COUNT_EXPECTED }))

/** `a + b` clamped to `[0, MAX_COUNT]`: counters never overflow the range every reader and encoder accepts. */
export const addCounts = (a: number, b: number): number => Math.min(MAX_COUNT, Math.max(0, a + b))

/**
 * A count: any non-negative integer is read (lenient decode), clamped to `MAX_COUNT`, so a count
 * stored before sums saturated still reads; only safe integers are written.
 */
const AnyCount = Schema.Number.pipe(Schema.filter(isCount, { message: () => "expected a non-negative integer" }))
const Count = Schema.transform(AnyCount, Schema.NonNegativeInt, {
  strict: true,
  decode: (n) => Math.min(n, MAX_COUNT),
  encode: (n) => n
})
/**
 * A result type outside the IANA list, as found in a report from the field (Stalwart sends
 * `"Other"`): kept as written, so a received report still decodes and prints. Only the received-report
 * schemas admit it; what we send is typed with `ResultType` (docs/design.md#received-result-types).
 */
export const UnknownResultType = Schema.String.pipe(Schema.brand("UnknownResultType"))
export type UnknownResultType = typeof UnknownResultType.Type

/** Receiving side: an IANA result type, else the unknown one as written. */
export const ReceivedResultType = Schema.Union(ResultType, UnknownResultType)
export type ReceivedResultType = typeof ReceivedResultType.Type

/** A list that is always an array when encoded; `null` or a missing key decode to `[]`. */
const list = <A, I>(item: Schema.Schema<A, I>, key: string) =>
  Schema.optionalWith(Schema.Array(item), { nullable: true, default: () => [] }).pipe(Schema.fromKey(key))

/** `mx-host` is an array (RFC errata 6241); the RFC's own example has a string, accepted on input. */
const StringOrList = Schema.Union(
  Schema.Array(Schema.String),
  Schema.transform(Schema.String, Schema.Array(Schema.String), {
    strict: true,
    decode: (s) => [s],
    encode: (a) => a.join(",")
  })
)

const optionalString = (key: string) =>
  Schema.optionalWith(Schema.String, { nullable: true, exact: true }).pipe(Schema.fromKey(key))

const count = (key: string) =>
  Schema.optionalWith(Count, { nullable: true, default: () => 0 }).pipe(Schema.fromKey(key))

export const Policy = Schema.Struct({
  policyType: Schema.propertySignature(PolicyType).pipe(Schema.fromKey("policy-type")),
  policyString: list(Schema.String, "policy-string"),
  policyDomain: Schema.propertySignature(Schema.String).pipe(Schema.fromKey("policy-domain")),
  mxHost: Schema.optionalWith(StringOrList, { nullable: true, default: () => [] }).pipe(Schema.fromKey("mx-host"))
})
export type Policy = typeof Policy.Type

export const Summary = Schema.Struct({
  totalSuccessfulSessionCount: count("total-successful-session-count"),
  totalFailureSessionCount: count("total-failure-session-count")
})
export type Summary = typeof Summary.Type

const failureDetails = <A extends string, I extends string>(resultType: Schema.Schema<A, I>) =>
  Schema.Struct({
    resultType: Schema.propertySignature(resultType).pipe(Schema.fromKey("result-type")),
    sendingMtaIp: optionalString("sending-mta-ip"),
    receivingMxHostname: optionalString("receiving-mx-hostname"),
    receivingMxHelo: optionalString("receiving-mx-helo"),
    receivingIp: optionalString("receiving-ip"),
    failedSessionCount: count("failed-session-count"),
    additionalInformation: optionalString("additional-information"),
    failureReasonCode: optionalString("failure-reason-code")
  })

export const FailureDetails = failureDetails(ResultType)
export type FailureDetails = typeof FailureDetails.Type

const policyResult = <A, I>(details: Schema.Schema<A, I>) =>
  Schema.Struct({
    policy: Policy,
    summary: Summary,
    failureDetails: list(details, "failure-details")
  })

export const PolicyResult = policyResult(FailureDetails)
export type PolicyResult = typeof PolicyResult.Type

/** A received report's failure details: any result type (docs/design.md#received-result-types). */
export const ReceivedFailureDetails = failureDetails(ReceivedResultType)
export type ReceivedFailureDetails = typeof ReceivedFailureDetails.Type

export const ReceivedPolicyResult = policyResult(ReceivedFailureDetails)
export type ReceivedPolicyResult = typeof ReceivedPolicyResult.Type

const listEquals = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** docs/design.md#policy-merge: same type, domain, strings and mx-hosts, element-wise and in order; empty = absent. */
export const policyEquals = (a: Policy, b: Policy): boolean =>
  a.policyType === b.policyType &&
  a.policyDomain === b.policyDomain &&
  listEquals(a.policyString, b.policyString) &&
  listEquals(a.mxHost, b.mxHost)

/** docs/design.md#counter-and-detail-add: failure details are the same entry when all fields but the count are equal ("" = absent). */
export const detailsKeyEquals = (a: FailureDetails, b: FailureDetails): boolean =>
  a.resultType === b.resultType &&
  (a.sendingMtaIp ?? "") === (b.sendingMtaIp ?? "") &&
  (a.receivingMxHostname ?? "") === (b.receivingMxHostname ?? "") &&
  (a.receivingMxHelo ?? "") === (b.receivingMxHelo ?? "") &&
  (a.receivingIp ?? "") === (b.receivingIp ?? "") &&
  (a.additionalInformation ?? "") === (b.additionalInformation ?? "") &&
  (a.failureReasonCode ?? "") === (b.failureReasonCode ?? "")

/**
 * docs/design.md#counter-and-detail-add `Result.Add`: counters added and clamped at zero (negative inputs undo a success, §7.5)
 * and at `MAX_COUNT`;
 * each detail added to its equal-by-key entry, else appended.
 */
export const add = (
  result: PolicyResult,
  success: number,
  failure: number,
  details: ReadonlyArray<FailureDetails> = []
): PolicyResult => {
  const merged = result.failureDetails.slice()
  for (const d of details) {
    const i = merged.findIndex((e) => detailsKeyEquals(e, d))
    if (i === -1) merged.push(d)
    else
      merged[i] = { ...merged[i]!, failedSessionCount: addCounts(merged[i]!.failedSessionCount, d.failedSessionCount) }
  }
  return {
    policy: result.policy,
    summary: {
      totalSuccessfulSessionCount: addCounts(result.summary.totalSuccessfulSessionCount, success),
      totalFailureSessionCount: addCounts(result.summary.totalFailureSessionCount, failure)
    },
    failureDetails: merged
  }
}

/**
 * docs/design.md#policy-merge `Report.Merge`: each incoming result is added to the first equal policy, else appended
 * unchanged. Policies keep the order in which they were first seen.
 */
export const merge = (
  policies: ReadonlyArray<PolicyResult>,
  incoming: ReadonlyArray<PolicyResult>
): Array<PolicyResult> => {
  const out = policies.slice()
  for (const nr of incoming) {
    const i = out.findIndex((p) => policyEquals(p.policy, nr.policy))
    if (i === -1) out.push(nr)
    else
      out[i] = add(
        out[i]!,
        nr.summary.totalSuccessfulSessionCount,
        nr.summary.totalFailureSessionCount,
        nr.failureDetails
      )
  }
  return out
}

/** docs/design.md#failure-rule: a failure is a failure count above zero or any failure detail (even with zero counters). */
export const hasFailure = (policies: ReadonlyArray<PolicyResult>): boolean =>
  policies.some((p) => p.summary.totalFailureSessionCount > 0 || p.failureDetails.length > 0)

/** docs/design.md#result-constructors `MakeResult`: a result with empty lists and zero counters. */
export const make = (
  policyType: PolicyType,
  policyDomain: string,
  options?: {
    readonly policyString?: ReadonlyArray<string> | undefined
    readonly mxHost?: ReadonlyArray<string> | undefined
    readonly success?: number | undefined
    readonly failure?: number | undefined
    readonly failureDetails?: ReadonlyArray<FailureDetails> | undefined
  }
): PolicyResult => ({
  policy: { policyType, policyString: options?.policyString ?? [], policyDomain, mxHost: options?.mxHost ?? [] },
  summary: { totalSuccessfulSessionCount: options?.success ?? 0, totalFailureSessionCount: options?.failure ?? 0 },
  failureDetails: options?.failureDetails ?? []
})
