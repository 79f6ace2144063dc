/**
 * Refused input, and the checks shared by session outcomes and directly handed rows: known policy and
 * result types (RFC 8460 §4.3, docs/design.md#result-types), no CR or LF in any text (it ends up in report
 * JSON, mail headers and logs), counts that are non-negative integers. Nothing of a refused input
 * is stored.
 */
import { isIP } from "node:net"
import { Day, PolicyResult } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import { Data } from "effect"

/** `field` is the path of the offending value, e.g. `policies[1].failureDetails[0].reasonCode`. */
export class InvalidOutcome extends Data.TaggedError("InvalidOutcome")<{
  readonly reason: string
  readonly field: string
}> {
  override get message(): string {
    return `invalid session outcome: ${this.field === "" ? "" : `${this.field}: `}${this.reason}`
  }
}

export const NO_CRLF = "must not contain CR or LF"

export const POLICY_TYPES: ReadonlySet<unknown> = new Set(PolicyResult.PolicyType.literals)
export const RESULT_TYPES: ReadonlySet<unknown> = new Set(PolicyResult.ResultType.literals)

// Two `includes` beat the equivalent regex by ~40 % on short strings, and this runs ~10 times an outcome.
export const isText = (u: unknown): u is string => typeof u === "string" && !u.includes("\n") && !u.includes("\r")

/** A count of one row or one session: at most `PolicyResult.MAX_INPUT_COUNT`, so sums stay exact. */
export const isCount = (u: unknown): u is number =>
  typeof u === "number" && Number.isSafeInteger(u) && u >= 0 && u <= PolicyResult.MAX_INPUT_COUNT

export const COUNT_EXPECTED = `expected a non-negative integer up to ${PolicyResult.MAX_INPUT_COUNT}`

// A session's addresses repeat (a few local IPs, the MX hosts' addresses): remember the valid ones
// rather than run node's IP regexes for every outcome. Bounded; cleared when full.
const knownIps = new Set<string>()

export const isIpAddress = (u: unknown): u is string => {
  if (typeof u !== "string") return false
  if (knownIps.has(u)) return true
  if (isIP(u) === 0) return false
  if (knownIps.size >= 4096) knownIps.clear()
  knownIps.add(u)
  return true
}

/** A `Domain` value (made by `Domain.parse`); its strings are checked too, the brand cannot be. */
export const isDomain = (u: unknown): boolean =>
  typeof u === "object" &&
  u !== null &&
  isText((u as { ascii: unknown }).ascii) &&
  (u as { ascii: string }).ascii.length > 0 &&
  isText((u as { unicode: unknown }).unicode)

const isTextList = (u: unknown): boolean => Array.isArray(u) && u.every(isText)

/** `["policies", 0, "type"]` → `policies[0].type` */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const k of path) out += typeof k === "number" ? `[${k}]` : out === "" ? String(k) : `.${String(k)}`
  return out
}

const DETAIL_TEXT = [
  "sendingMtaIp",
  "receivingMxHostname",
  "receivingMxHelo",
  "receivingIp",
  "additionalInformation",
  "failureReasonCode"
] as const

/** Checks one row for `Collector.recordRows` (the whole batch is refused on the first fault). */
export const checkRow = (row: NewResultRow, i: number): InvalidOutcome | undefined => {
  const at = `rows[${i}]`
  const bad = (reason: string, field: string) => new InvalidOutcome({ reason, field: `${at}.${field}` })
  if (typeof row !== "object" || row === null) return new InvalidOutcome({ reason: "expected an object", field: at })
  if (!isDomain(row.policyDomain)) return bad("expected a domain", "policyDomain")
  if (!isDomain(row.recipientDomain)) return bad("expected a domain", "recipientDomain")
  if (typeof row.day !== "string" || Day.parse(row.day)._tag === "Left") return bad("expected a day YYYY-MM-DD", "day")
  if (typeof row.isHost !== "boolean") return bad("expected a boolean", "isHost")
  if (typeof row.sendReport !== "boolean") return bad("expected a boolean", "sendReport")
  if (!Array.isArray(row.results)) return bad("expected an array", "results")
  for (let j = 0; j < row.results.length; j++) {
    const r = row.results[j]!
    const rat = `results[${j}]`
    if (typeof r !== "object" || r === null || typeof r.policy !== "object" || r.policy === null)
      return bad("expected a policy result", rat)
    if (!POLICY_TYPES.has(r.policy.policyType)) return bad("unknown policy type", `${rat}.policy.policyType`)
    if (!isText(r.policy.policyDomain)) return bad(NO_CRLF, `${rat}.policy.policyDomain`)
    if (!isTextList(r.policy.policyString))
      return bad(`expected a list of texts; ${NO_CRLF}`, `${rat}.policy.policyString`)
    if (!isTextList(r.policy.mxHost)) return bad(`expected a list of texts; ${NO_CRLF}`, `${rat}.policy.mxHost`)
    if (typeof r.summary !== "object" || r.summary === null) return bad("expected a summary", `${rat}.summary`)
    if (!isCount(r.summary.totalSuccessfulSessionCount))
      return bad(COUNT_EXPECTED, `${rat}.summary.totalSuccessfulSessionCount`)
    if (!isCount(r.summary.totalFailureSessionCount))
      return bad(COUNT_EXPECTED, `${rat}.summary.totalFailureSessionCount`)
    if (!Array.isArray(r.failureDetails)) return bad("expected an array", `${rat}.failureDetails`)
    for (let k = 0; k < r.failureDetails.length; k++) {
      const d = r.failureDetails[k]!
      const dat = `${rat}.failureDetails[${k}]`
      if (typeof d !== "object" || d === null) return bad("expected an object", dat)
      if (!RESULT_TYPES.has(d.resultType)) return bad("unknown result type", `${dat}.resultType`)
      for (const f of DETAIL_TEXT) if (d[f] !== undefined && !isText(d[f])) return bad(NO_CRLF, `${dat}.${f}`)
      if (!isCount(d.failedSessionCount)) return bad(COUNT_EXPECTED, `${dat}.failedSessionCount`)
    }
  }
  return undefined
}
