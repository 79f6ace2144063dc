/**
 * The rules of collector input, each written once: the `SessionOutcome` Schema is built from them and
 * the fast checks of typed input (`OutcomeCheck`) call them, so the two cannot drift apart
 * (test/SessionOutcome.test.ts ties them together by property).
 */
import { isIP } from "node:net"

export const NO_CRLF = "must not contain CR or LF"

/** Free text that ends up in reports, mail headers and logs: CR and LF are refused (header and log injection). */
// Two `includes` beat the equivalent regex by ~40 % on short strings, and this runs ~10 times an outcome.
export const isText = (u: unknown): u is string => typeof u === "string" && !u.includes("\n") && !u.includes("\r")

/** Index of the first entry that is not text, -1 if all are, -2 if `u` is not an array. */
export const badTextAt = (u: unknown): number => {
  if (!Array.isArray(u)) return -2
  for (let i = 0; i < u.length; i++) if (!isText(u[i])) return i
  return -1
}

// A session's addresses repeat (a few local IPs, the MX hosts' addresses): remember the valid ones
// rather than run node's IP regexes for every outcome. Bounded; cleared when full.
const knownIps = new Set<string>()

/** An IPv4 or IPv6 address (node's `isIP`). */
export const isIpAddress = (u: unknown): u is string => {
  if (typeof u !== "string") return false
  if (knownIps.has(u)) return true
  if (isIP(u) === 0) return false
  if (knownIps.size >= 4096) knownIps.clear()
  knownIps.add(u)
  return true
}

/** RFC 5321 §4.1.3 address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) or a bare address. */
export const isIpLiteral = (s: string): boolean => {
  if (s.length > 2 && s.charCodeAt(0) === 91 && s.charCodeAt(s.length - 1) === 93) {
    const inner = s.slice(1, -1)
    return /^ipv6:/i.test(inner) ? isIP(inner.slice(5)) === 6 : isIP(inner) === 4
  }
  return isIP(s) !== 0
}

/** A `Domain` value (made by `Domain.parse`); its strings are checked, the brand cannot be. */
export const isDomain = (u: unknown): boolean =>
  typeof u === "object" &&
  u !== null &&
  isText((u as { ascii: unknown }).ascii) &&
  (u as { ascii: string }).ascii.length > 0 &&
  isText((u as { unicode: unknown }).unicode)

const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
export const TIME_EXPECTED = "timestamp must be a valid date, 1970 to 9999"
/** A session's time: 1970 to 9999 (the report's date-range and file name need a 4-digit year). */
export const isValidTime = (t: number): boolean => t >= 0 && t <= MAX_TIME

/** Presentation form `<usage> <selector> <matching type> <hex>` (docs/design.md#report-fields). */
export const TLSA_RECORD = /^\d{1,3} \d{1,3} \d{1,3} [0-9a-fA-F]*$/

interface PolicyKind {
  readonly type: string
  readonly scope?: string
}

/** Host policies make host rows (isHost, policy domain = MX host / TLSA base domain), docs/design.md#policy-domains. */
export const isHostPolicy = (p: PolicyKind): boolean =>
  p.type === "tlsa" || (p.type === "no-policy-found" && p.scope === "mx-host")

/** At least one policy; at most one recipient-domain policy and at most one host policy. */
export const policiesIssue = (
  policies: ReadonlyArray<PolicyKind>
): { readonly path: ReadonlyArray<number>; readonly message: string } | undefined => {
  if (policies.length === 0) return { path: [], message: "at least one policy is required" }
  let host = -1
  let recipient = -1
  for (let i = 0; i < policies.length; i++) {
    if (isHostPolicy(policies[i]!)) {
      if (host !== -1) return { path: [i], message: "a session has at most one host policy (tlsa or mx-host)" }
      host = i
    } else {
      if (recipient !== -1)
        return { path: [i], message: "a session has at most one recipient-domain policy (sts or recipient-domain)" }
      recipient = i
    }
  }
  return undefined
}

/** `["policies", 0, "type"]` → `policies[0].type` */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const k of path) out += typeof k === "number" ? `[${k}]` : out === "" ? String(k) : `.${String(k)}`
  return out
}
