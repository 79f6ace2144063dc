/**
 * Fast checks of already-typed input on the hot path, with the rules of the Schema they stand for: a
 * typed value still comes from code we do not control (a JS caller, a cast), and `Schema.is` costs
 * several µs an outcome. `check` agrees with the `SessionOutcome` Schema and `checkRow` with the
 * `PolicyResult` Schema plus the input rules (test/SessionOutcome.test.ts, test/Collector.test.ts).
 * Field paths are built only for a refusal.
 */
import { Day, PolicyResult } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import { InvalidOutcome } from "../InvalidOutcome.js"
import {
  badTextAt,
  formatPath,
  isDomain,
  isIpAddress,
  isIpLiteral,
  isText,
  isValidTime,
  NO_CRLF,
  policiesIssue,
  TIME_EXPECTED,
  TLSA_RECORD
} from "./OutcomeRules.js"

const { INPUT_COUNT_EXPECTED, isInputCount, isPolicyType, isResultType } = PolicyResult

const invalid = (reason: string, field: string) => new InvalidOutcome({ reason, field })

/** The shape `check` reads; every field is checked, so nothing of it is trusted. */
interface Loose {
  readonly [key: string]: unknown
}

const isObject = (u: unknown): u is Loose => typeof u === "object" && u !== null

// Field paths are built only for a refusal: `check` runs for every outcome.
const at = (i: number, rest: string) => `policies[${i}]${rest}`

/** The list `key` of policy `i` is an array of texts, or the refusal. */
const checkTexts = (u: unknown, i: number, key: string): InvalidOutcome | undefined => {
  const bad = badTextAt(u)
  if (bad === -1) return undefined
  return bad === -2 ? invalid("expected an array", at(i, `.${key}`)) : invalid(NO_CRLF, at(i, `.${key}[${bad}]`))
}

/** The `SessionOutcome` Schema's rules for a typed outcome. */
export const check = (o: unknown): InvalidOutcome | undefined => {
  if (!isObject(o)) return invalid("expected an object", "")
  const ts = o.timestamp
  if (!(ts instanceof Date) || !isValidTime(ts.getTime())) return invalid(TIME_EXPECTED, "timestamp")
  const r = o.recipientDomain
  if (typeof r === "string") {
    if (!isIpLiteral(r)) return invalid("expected a domain or an IP literal", "recipientDomain")
  } else if (!isDomain(r)) return invalid("expected a domain", "recipientDomain")
  if (!isDomain(o.mxHost)) return invalid("expected a domain", "mxHost")
  if (o.sendingIp !== undefined && !isIpAddress(o.sendingIp)) return invalid("not an IP address", "sendingIp")
  if (o.receivingIp !== undefined && !isIpAddress(o.receivingIp)) return invalid("not an IP address", "receivingIp")
  if (o.mxGreeting !== undefined && !isText(o.mxGreeting)) return invalid(NO_CRLF, "mxGreeting")
  if (o.isTlsReport !== undefined && typeof o.isTlsReport !== "boolean")
    return invalid("expected a boolean", "isTlsReport")
  if (o.isDmarcReport !== undefined && typeof o.isDmarcReport !== "boolean")
    return invalid("expected a boolean", "isDmarcReport")
  const policies = o.policies
  if (!Array.isArray(policies)) return invalid("expected an array", "policies")
  for (let i = 0; i < policies.length; i++) {
    const e = checkPolicy(policies[i], i)
    if (e !== undefined) return e
  }
  const issue = policiesIssue(policies as ReadonlyArray<{ readonly type: string }>)
  if (issue !== undefined) return invalid(issue.message, formatPath(["policies", ...issue.path]))
  return undefined
}

const checkPolicy = (p: unknown, i: number): InvalidOutcome | undefined => {
  if (!isObject(p)) return invalid("expected an object", at(i, ""))
  if (p.result !== "success" && p.result !== "failure")
    return invalid('expected "success" or "failure"', at(i, ".result"))
  switch (p.type) {
    case "sts": {
      const e =
        (p.policyLines === undefined ? undefined : checkTexts(p.policyLines, i, "policyLines")) ??
        (p.mxPatterns === undefined ? undefined : checkTexts(p.mxPatterns, i, "mxPatterns"))
      if (e !== undefined) return e
      break
    }
    case "tlsa": {
      const records = p.records
      if (!Array.isArray(records)) return invalid("expected an array", at(i, ".records"))
      for (let j = 0; j < records.length; j++) {
        const rec = records[j]
        if (typeof rec !== "string" || !TLSA_RECORD.test(rec))
          return invalid("not a TLSA record", at(i, `.records[${j}]`))
      }
      if (!isDomain(p.baseDomain)) return invalid("expected a domain", at(i, ".baseDomain"))
      break
    }
    case "no-policy-found": {
      if (p.scope !== "recipient-domain" && p.scope !== "mx-host")
        return invalid('expected "recipient-domain" or "mx-host"', at(i, ".scope"))
      if (p.domain !== undefined && !isDomain(p.domain)) return invalid("expected a domain", at(i, ".domain"))
      break
    }
    default:
      return invalid(`unknown policy type ${JSON.stringify(p.type)}`, at(i, ".type"))
  }
  const details = p.failureDetails
  if (details === undefined) return undefined
  if (!Array.isArray(details)) return invalid("expected an array", at(i, ".failureDetails"))
  for (let j = 0; j < details.length; j++) {
    const d: unknown = details[j]
    if (!isObject(d)) return invalid("expected an object", at(i, `.failureDetails[${j}]`))
    if (!isResultType(d.resultType)) return invalid("unknown result type", at(i, `.failureDetails[${j}].resultType`))
    if (d.reasonCode !== undefined && !isText(d.reasonCode))
      return invalid(NO_CRLF, at(i, `.failureDetails[${j}].reasonCode`))
    if (d.additionalInformation !== undefined && !isText(d.additionalInformation))
      return invalid(NO_CRLF, at(i, `.failureDetails[${j}].additionalInformation`))
    if (d.failedSessionCount !== undefined && !isInputCount(d.failedSessionCount))
      return invalid(INPUT_COUNT_EXPECTED, at(i, `.failureDetails[${j}].failedSessionCount`))
  }
  return undefined
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
  const bad = (reason: string, field: string) => invalid(reason, `${at}.${field}`)
  if (!isObject(row)) return invalid("expected an object", at)
  if (!isDomain(row.policyDomain)) return bad("expected a domain", "policyDomain")
  if (!isDomain(row.recipientDomain)) return bad("expected a domain", "recipientDomain")
  if (typeof row.day !== "string" || Day.parse(row.day)._tag === "Left") return bad("expected a day YYYY-MM-DD", "day")
  if (typeof row.isHost !== "boolean") return bad("expected a boolean", "isHost")
  if (typeof row.sendReport !== "boolean") return bad("expected a boolean", "sendReport")
  if (!Array.isArray(row.results)) return bad("expected an array", "results")
  for (let j = 0; j < row.results.length; j++) {
    const r: unknown = row.results[j]
    const rat = `results[${j}]`
    if (!isObject(r) || !isObject(r.policy)) return bad("expected a policy result", rat)
    const policy = r.policy
    if (!isPolicyType(policy.policyType)) return bad("unknown policy type", `${rat}.policy.policyType`)
    if (!isText(policy.policyDomain)) return bad(NO_CRLF, `${rat}.policy.policyDomain`)
    if (badTextAt(policy.policyString) !== -1)
      return bad(`expected a list of texts; ${NO_CRLF}`, `${rat}.policy.policyString`)
    if (badTextAt(policy.mxHost) !== -1) return bad(`expected a list of texts; ${NO_CRLF}`, `${rat}.policy.mxHost`)
    const summary = r.summary
    if (!isObject(summary)) return bad("expected a summary", `${rat}.summary`)
    if (!isInputCount(summary.totalSuccessfulSessionCount))
      return bad(INPUT_COUNT_EXPECTED, `${rat}.summary.totalSuccessfulSessionCount`)
    if (!isInputCount(summary.totalFailureSessionCount))
      return bad(INPUT_COUNT_EXPECTED, `${rat}.summary.totalFailureSessionCount`)
    const details = r.failureDetails
    if (!Array.isArray(details)) return bad("expected an array", `${rat}.failureDetails`)
    for (let k = 0; k < details.length; k++) {
      const d: unknown = details[k]
      const dat = `${rat}.failureDetails[${k}]`
      if (!isObject(d)) return bad("expected an object", dat)
      if (!isResultType(d.resultType)) return bad("unknown result type", `${dat}.resultType`)
      for (const f of DETAIL_TEXT) if (d[f] !== undefined && !isText(d[f])) return bad(NO_CRLF, `${dat}.${f}`)
      if (!isInputCount(d.failedSessionCount)) return bad(INPUT_COUNT_EXPECTED, `${dat}.failedSessionCount`)
    }
  }
  return undefined
}
