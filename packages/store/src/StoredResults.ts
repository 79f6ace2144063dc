/**
 * The `results` column: a row's policies as JSON text in the RFC 8460 wire form (kebab-case keys,
 * lists always arrays, absent optional fields omitted: docs/design.md#conservative-json), so the column reads like the
 * `policies` of a report and any dialect can hold it as TEXT.
 *
 * The hot path (`addResults`) encodes and decodes every touched row, and the Schema codec costs about
 * 15 µs a row, so both directions are written out by hand here. `decode` falls back to the lenient
 * `PolicyResult` Schema for anything it does not recognise, which also yields a proper parse error.
 * test/StoredResults.test.ts checks both against the Schema.
 */
import { PolicyResult } from "@tlsrpt/core"
import { Either, type ParseResult, Schema } from "effect"

type Json = Record<string, unknown>

const encodeDetails = (d: PolicyResult.FailureDetails): Json => {
  const o: Json = { "result-type": d.resultType }
  if (d.sendingMtaIp !== undefined) o["sending-mta-ip"] = d.sendingMtaIp
  if (d.receivingMxHostname !== undefined) o["receiving-mx-hostname"] = d.receivingMxHostname
  if (d.receivingMxHelo !== undefined) o["receiving-mx-helo"] = d.receivingMxHelo
  if (d.receivingIp !== undefined) o["receiving-ip"] = d.receivingIp
  o["failed-session-count"] = d.failedSessionCount
  if (d.additionalInformation !== undefined) o["additional-information"] = d.additionalInformation
  if (d.failureReasonCode !== undefined) o["failure-reason-code"] = d.failureReasonCode
  return o
}

/** The wire objects, equal to `Schema.encodeSync(Schema.Array(PolicyResult))`. */
export const toWire = (results: ReadonlyArray<PolicyResult.PolicyResult>): ReadonlyArray<Json> =>
  results.map((r) => ({
    policy: {
      "policy-type": r.policy.policyType,
      "policy-string": r.policy.policyString,
      "policy-domain": r.policy.policyDomain,
      "mx-host": r.policy.mxHost
    },
    summary: {
      "total-successful-session-count": r.summary.totalSuccessfulSessionCount,
      "total-failure-session-count": r.summary.totalFailureSessionCount
    },
    "failure-details": r.failureDetails.map(encodeDetails)
  }))

export const encode = (results: ReadonlyArray<PolicyResult.PolicyResult>): string => JSON.stringify(toWire(results))

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)
// The Schema's own fast checks (core `PolicyResult`), so this decoder and the Schema agree.
const { isCount, isPolicyType, isResultType } = PolicyResult
/** As the `PolicyResult` Schema: any non-negative integer reads, clamped to `MAX_COUNT`. */
const count = (n: number): number => Math.min(n, PolicyResult.MAX_COUNT)
const isStrings = (u: unknown): u is ReadonlyArray<string> => Array.isArray(u) && u.every((s) => typeof s === "string")

/** Thrown inside the fast path only, caught right below: the text is not in the form `encode` writes. */
const NOT_CANONICAL = Symbol("not canonical")

const optional = (o: Json, key: string): string | undefined => {
  const v = o[key]
  if (v === undefined) return undefined
  if (typeof v !== "string") throw NOT_CANONICAL
  return v
}

/** The optional text fields of a failure detail (RFC 8460 §4.4): the stored key, the model's field. */
const OPTIONAL_DETAILS = [
  ["sending-mta-ip", "sendingMtaIp"],
  ["receiving-mx-hostname", "receivingMxHostname"],
  ["receiving-mx-helo", "receivingMxHelo"],
  ["receiving-ip", "receivingIp"],
  ["additional-information", "additionalInformation"],
  ["failure-reason-code", "failureReasonCode"]
] as const

const fastDetails = (u: unknown): PolicyResult.FailureDetails => {
  if (!isObject(u) || !isResultType(u["result-type"]) || !isCount(u["failed-session-count"])) throw NOT_CANONICAL
  const d: {
    -readonly [K in keyof PolicyResult.FailureDetails]: PolicyResult.FailureDetails[K]
  } = {
    resultType: u["result-type"] as PolicyResult.ResultType,
    failedSessionCount: count(u["failed-session-count"])
  }
  for (const [key, field] of OPTIONAL_DETAILS) {
    const v = optional(u, key)
    if (v !== undefined) d[field] = v
  }
  return d
}

const fastResult = (u: unknown): PolicyResult.PolicyResult => {
  if (!isObject(u)) throw NOT_CANONICAL
  const { policy, summary } = u
  const details = u["failure-details"]
  if (!isObject(policy) || !isObject(summary) || !Array.isArray(details)) throw NOT_CANONICAL
  const policyType = policy["policy-type"]
  const policyString = policy["policy-string"]
  const policyDomain = policy["policy-domain"]
  const mxHost = policy["mx-host"]
  const success = summary["total-successful-session-count"]
  const failure = summary["total-failure-session-count"]
  if (
    !isPolicyType(policyType) ||
    !isStrings(policyString) ||
    typeof policyDomain !== "string" ||
    !isStrings(mxHost) ||
    !isCount(success) ||
    !isCount(failure)
  )
    throw NOT_CANONICAL
  return {
    policy: { policyType: policyType as PolicyResult.PolicyType, policyString, policyDomain, mxHost },
    summary: { totalSuccessfulSessionCount: count(success), totalFailureSessionCount: count(failure) },
    failureDetails: details.map(fastDetails)
  }
}

const decodeSchema = Schema.decodeUnknownEither(Schema.parseJson(Schema.Array(PolicyResult.PolicyResult)))

/** Decodes the column; text in any other accepted spelling (nulls, a string mx-host) goes through the Schema. */
export const decode = (
  text: string
): Either.Either<ReadonlyArray<PolicyResult.PolicyResult>, ParseResult.ParseError | SyntaxError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return Either.left(e as SyntaxError)
  }
  if (Array.isArray(json)) {
    try {
      return Either.right(json.map(fastResult))
    } catch (e) {
      if (e !== NOT_CANONICAL) throw e
    }
  }
  return decodeSchema(text)
}
