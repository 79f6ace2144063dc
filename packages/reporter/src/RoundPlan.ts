/**
 * Pure parts of a round: gathering keys into the two phases (docs/design.md#key-gathering), pacing (docs/design.md#pacing), the
 * phase-2 rewrite and skip (docs/design.md#mx-host-rewrite) and building the report (docs/design.md#report-header).
 */
import { Day, type Domain, PolicyResult, type Report, ReportNaming } from "@tlsrpt/core"
import type { ResultKey, ResultRow } from "@tlsrpt/store"
import { Duration } from "effect"

export interface PlannedKey {
  readonly policyDomain: string
  readonly day: Day.Day
  /** The same (policy domain, day) is also a key of the other phase. */
  readonly inBoth: boolean
  /** True when any row of the key in this phase has SendReport (docs/design.md#key-gathering). */
  readonly send: boolean
}

export interface Plan {
  /** Keys where policy domain = recipient domain (MTA-STS / no-policy-found of the recipient domain). */
  readonly recipientDomains: ReadonlyArray<PlannedKey>
  /** Keys where they differ (MX hosts, DANE). */
  readonly mxHosts: ReadonlyArray<PlannedKey>
  /** Number of keys that will be sent, over both phases (docs/design.md#key-gathering nsend). */
  readonly toSend: number
}

const keyOf = (policyDomain: string, day: string) => `${policyDomain}\u0000${day}`

/**
 * docs/design.md#key-gathering: split on domain equality (not IsHost); a key is "send" if any of its rows in that map
 * has SendReport. Keys are ordered by day, then policy domain, so a round is deterministic
 * (mox iterates a Go map: unspecified order).
 */
export const plan = (keys: ReadonlyArray<ResultKey>): Plan => {
  const rcpt = new Map<string, { policyDomain: string; day: Day.Day; send: boolean }>()
  const mx = new Map<string, { policyDomain: string; day: Day.Day; send: boolean }>()
  for (const k of keys) {
    const map = k.policyDomain === k.recipientDomain ? rcpt : mx
    const id = keyOf(k.policyDomain, k.day)
    const have = map.get(id)
    if (have === undefined) map.set(id, { policyDomain: k.policyDomain, day: k.day, send: k.sendReport })
    else have.send = have.send || k.sendReport
  }
  const order = (a: PlannedKey, b: PlannedKey) =>
    a.day < b.day
      ? -1
      : a.day > b.day
        ? 1
        : a.policyDomain < b.policyDomain
          ? -1
          : a.policyDomain > b.policyDomain
            ? 1
            : 0
  const recipientDomains = [...rcpt.entries()].map(([id, k]) => ({ ...k, inBoth: mx.has(id) })).sort(order)
  const mxHosts = [...mx.entries()].map(([id, k]) => ({ ...k, inBoth: rcpt.has(id) })).sort(order)
  const toSend = recipientDomains.filter((k) => k.send).length + mxHosts.filter((k) => k.send).length
  return { recipientDomains, mxHosts, toSend }
}

/** docs/design.md#pacing: `gap = min(window / n, maxGap)`, the window itself when nothing is sent. */
export const gap = (window: Duration.Duration, maxGap: Duration.Duration, toSend: number): Duration.Duration => {
  const per = toSend > 0 ? Duration.millis(Duration.toMillis(window) / toSend) : window
  return Duration.min(per, maxGap)
}

/** `YYYY-MM-DD` of the day whose stale rows go first (docs/design.md#stale-cleanup: keep the two days before `day`). */
export const staleBefore = (day: Day.Day): Day.Day => Day.addDays(day, -2)

const listEquals = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) =>
  a.length === b.length && a.every((x, i) => x === b[i])

/** The destination kind of a rua string by its scheme, compared case-insensitively (RFC 3986 §3.1). */
export const kindOf = (uri: string): "mailto" | "https" | undefined => {
  const scheme = uri.slice(0, Math.max(0, uri.indexOf(":"))).toLowerCase()
  return scheme === "mailto" || scheme === "https" ? scheme : undefined
}

/**
 * The report's policies from the fetched rows, in query order (docs/design.md#ordering), for the destinations of
 * one kind. Phase 2 (docs/design.md#mx-host-rewrite): rows whose recipient domain already got this report at
 * identical addresses of this kind are skipped (docs/design.md#phase-2-skip-per-kind); each result's
 * policy-domain becomes the recipient domain and, for host rows, mx-host the original policy domain
 * (docs/design.md#mx-host-rewrite).
 */
export const policiesOf = (
  phase: "recipient-domain" | "policy-domain",
  rows: ReadonlyArray<ResultRow>,
  kind: "mailto" | "https",
  reportingAddresses: ReadonlyArray<string>
): ReadonlyArray<PolicyResult.PolicyResult> => {
  let policies: ReadonlyArray<PolicyResult.PolicyResult> = []
  for (const row of rows) {
    if (phase === "recipient-domain") {
      policies = PolicyResult.merge(policies, row.results)
      continue
    }
    const stored = row.recipientDomainReportingAddresses.filter((uri) => kindOf(uri) === kind)
    if (stored.length > 0 && listEquals(stored, reportingAddresses)) continue
    const rewritten = row.results.map(
      (r): PolicyResult.PolicyResult => ({
        ...r,
        policy: {
          ...r.policy,
          policyDomain: row.recipientDomain,
          mxHost: row.isHost ? [r.policy.policyDomain] : r.policy.mxHost
        }
      })
    )
    policies = PolicyResult.merge(policies, rewritten)
  }
  return policies
}

/** docs/design.md#already-sent-guard: a report for this key was already committed (a retried or restarted round). */
export const alreadySent = (phase: "recipient-domain" | "policy-domain", rows: ReadonlyArray<ResultRow>): boolean =>
  phase === "recipient-domain"
    ? rows.some((r) => r.policyDomain === r.recipientDomain && r.sentToRecipientDomain)
    : // Beyond mox: a pure MX host has no row with policy = recipient domain, so its guard never fired
      // and a restarted round sent again; every row already marked means it was committed.
      rows.some((r) => r.policyDomain === r.recipientDomain && r.sentToPolicyDomain) ||
      (rows.length > 0 && rows.every((r) => r.sentToPolicyDomain))

/** docs/design.md#report-header, with the key's own day (docs/design.md#each-report-describes-its-own-day). */
export const report = (
  submitter: { readonly domain: Domain.Domain; readonly organizationName: string; readonly contactInfo: string },
  policyDomain: Domain.Domain,
  day: Day.Day,
  policies: ReadonlyArray<PolicyResult.PolicyResult>,
  options?: { readonly mxHost?: boolean | undefined }
): Report.Report => ({
  organizationName: submitter.organizationName,
  dateRange: ReportNaming.dateRange(day),
  contactInfo: submitter.contactInfo,
  reportId: ReportNaming.reportId(day, policyDomain, submitter.domain, options),
  policies
})
