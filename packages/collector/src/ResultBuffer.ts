/**
 * The collector's in-memory aggregate: result rows merged by key (policy domain, day, recipient
 * domain) with the store's own rules (docs/design.md#row-merge, docs/design.md#merge-rules), so that adding the drained rows to the store
 * gives exactly what adding every row one by one would have given:
 * - policies of a key in first-seen order, equal policies (docs/design.md#policy-merge) summed;
 * - failure details of a policy in first-seen order, each added to the first equal-by-key detail
 *   (docs/design.md#counter-and-detail-add), except that a policy's first result is taken unchanged (docs/design.md#policy-merge);
 * - isHost: last writer wins; sendReport: sticky true.
 * Counts here are never negative (refused before), so the store's clamping at zero cannot differ.
 *
 * Mutable and frugal on purpose: `Collector.record` runs it for every session. A key costs two
 * objects (its entry and its first policy); nothing of the caller's per-row objects is kept, since
 * holding on to them makes V8 pretenure their allocation sites and turns every later row into
 * old-generation garbage (measured: +130 MB heap at 1 M outcomes).
 */
import type { Day, Domain } from "@tlsrpt/core"
import { PolicyResult } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import type { RowView } from "./SessionOutcome.js"

class DetailEntry {
  constructor(
    readonly detail: PolicyResult.FailureDetails,
    public count: number
  ) {}
}

class PolicyEntry {
  success = 0
  failure = 0
  details: Array<DetailEntry> | undefined = undefined
  /** Built once a policy holds many distinct details, to keep adding O(1). */
  index: Map<string, DetailEntry> | undefined = undefined
  constructor(
    readonly policyType: PolicyResult.PolicyType,
    readonly policyString: ReadonlyArray<string>,
    readonly policyDomain: string,
    readonly mxHost: ReadonlyArray<string>
  ) {}
}

class KeyEntry {
  first: PolicyEntry | undefined = undefined
  rest: Array<PolicyEntry> | undefined = undefined
  constructor(
    readonly policyDomain: Domain.Domain,
    readonly day: Day.Day,
    readonly recipientDomain: Domain.Domain,
    public isHost: boolean,
    public sendReport: boolean
  ) {}
}

const INDEX_FROM = 8

const sameList = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean => {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** docs/design.md#policy-merge policy equality. */
const samePolicy = (
  p: PolicyEntry,
  policyType: string,
  policyString: ReadonlyArray<string>,
  policyDomain: string,
  mxHost: ReadonlyArray<string>
): boolean =>
  p.policyType === policyType &&
  p.policyDomain === policyDomain &&
  sameList(p.policyString, policyString) &&
  sameList(p.mxHost, mxHost)

/** docs/design.md#counter-and-detail-add identity: every field but the count, absent = "". NUL cannot occur in the fields. */
const detailKey = (d: PolicyResult.FailureDetails): string =>
  `${d.resultType}\u0000${d.sendingMtaIp ?? ""}\u0000${d.receivingMxHostname ?? ""}\u0000${d.receivingMxHelo ?? ""}\u0000${d.receivingIp ?? ""}\u0000${d.additionalInformation ?? ""}\u0000${d.failureReasonCode ?? ""}`

/** Key → the FIRST entry with that key (docs/design.md#counter-and-detail-add adds to the first equal detail). */
const indexOf = (details: ReadonlyArray<DetailEntry>): Map<string, DetailEntry> => {
  const index = new Map<string, DetailEntry>()
  for (const e of details) {
    const k = detailKey(e.detail)
    if (!index.has(k)) index.set(k, e)
  }
  return index
}

type Slot = KeyEntry | Map<string, KeyEntry>

export class ResultBuffer {
  // day → policy domain → the entry, or recipient domain → entry once a policy domain has several
  // (an MX host shared by many domains). Keyed by the domains' own strings, whose hashes V8 caches,
  // where a concatenated key would be built and hashed for every row.
  private byDay = new Map<string, Map<string, Slot>>()
  private lastDay = ""
  private lastByPolicy: Map<string, Slot> | undefined
  /** First-seen order, which becomes the store's insertion order (row ids, docs/design.md#ordering). */
  private order: Array<KeyEntry> = []
  private detailEntries = 0

  /** Distinct (policy domain, day, recipient domain) keys held. */
  get size(): number {
    return this.order.length
  }

  /** Distinct failure details held (the other thing that grows with input). */
  get details(): number {
    return this.detailEntries
  }

  /** Merges a row (e.g. from `Collector.recordRows`). */
  add(row: NewResultRow): void {
    const entry = this.entry(row.policyDomain, row.day, row.recipientDomain, row.isHost, row.sendReport)
    const results = row.results
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!
      const p = r.policy
      this.addPolicy(
        entry,
        p.policyType,
        p.policyString,
        p.policyDomain,
        p.mxHost,
        r.summary.totalSuccessfulSessionCount,
        r.summary.totalFailureSessionCount,
        r.failureDetails
      )
    }
  }

  /** Merges a row of `SessionOutcome.forEachRow` (the hot path: no row object is built). */
  addView(v: RowView): void {
    const entry = this.entry(v.policyDomain, v.day, v.recipientDomain, v.isHost, v.sendReport)
    this.addPolicy(
      entry,
      v.policyType,
      v.policyString,
      v.policyDomain.ascii,
      v.mxHost,
      v.success,
      v.failure,
      v.failureDetails
    )
  }

  private entry(
    policyDomain: Domain.Domain,
    day: Day.Day,
    recipientDomain: Domain.Domain,
    isHost: boolean,
    sendReport: boolean
  ): KeyEntry {
    let byPolicy = this.lastByPolicy
    if (day !== this.lastDay || byPolicy === undefined) {
      byPolicy = this.byDay.get(day)
      if (byPolicy === undefined) {
        byPolicy = new Map()
        this.byDay.set(day, byPolicy)
      }
      this.lastDay = day
      this.lastByPolicy = byPolicy
    }
    const recipient = recipientDomain.ascii
    const slot = byPolicy.get(policyDomain.ascii)
    let entry: KeyEntry | undefined
    if (slot === undefined) {
      entry = this.create(policyDomain, day, recipientDomain, isHost, sendReport)
      byPolicy.set(policyDomain.ascii, entry)
      return entry
    }
    if (slot instanceof Map) {
      entry = slot.get(recipient)
      if (entry === undefined) {
        entry = this.create(policyDomain, day, recipientDomain, isHost, sendReport)
        slot.set(recipient, entry)
        return entry
      }
    } else if (slot.recipientDomain.ascii === recipient) entry = slot
    else {
      entry = this.create(policyDomain, day, recipientDomain, isHost, sendReport)
      byPolicy.set(
        policyDomain.ascii,
        new Map([
          [slot.recipientDomain.ascii, slot],
          [recipient, entry]
        ])
      )
      return entry
    }
    entry.isHost = isHost
    if (sendReport) entry.sendReport = true
    return entry
  }

  private create(
    policyDomain: Domain.Domain,
    day: Day.Day,
    recipientDomain: Domain.Domain,
    isHost: boolean,
    sendReport: boolean
  ): KeyEntry {
    const entry = new KeyEntry(policyDomain, day, recipientDomain, isHost, sendReport)
    this.order.push(entry)
    return entry
  }

  private addPolicy(
    entry: KeyEntry,
    policyType: PolicyResult.PolicyType,
    policyString: ReadonlyArray<string>,
    policyDomain: string,
    mxHost: ReadonlyArray<string>,
    success: number,
    failure: number,
    details: ReadonlyArray<PolicyResult.FailureDetails>
  ): void {
    let p = entry.first
    if (p !== undefined && !samePolicy(p, policyType, policyString, policyDomain, mxHost)) {
      p = undefined
      const rest = entry.rest
      if (rest !== undefined)
        for (let i = 0; i < rest.length; i++)
          if (samePolicy(rest[i]!, policyType, policyString, policyDomain, mxHost)) {
            p = rest[i]
            break
          }
    }
    if (p === undefined) {
      p = new PolicyEntry(policyType, policyString, policyDomain, mxHost)
      if (entry.first === undefined) entry.first = p
      else if (entry.rest === undefined) entry.rest = [p]
      else entry.rest.push(p)
      // docs/design.md#policy-merge: a new policy is appended unchanged; its own details are not merged among themselves.
      if (details.length > 0) {
        p.details = details.map((d) => new DetailEntry({ ...d }, d.failedSessionCount))
        this.detailEntries += details.length
        if (p.details.length >= INDEX_FROM) p.index = indexOf(p.details)
      }
    } else for (let i = 0; i < details.length; i++) this.addDetail(p, details[i]!)
    // Saturate at the top only: a negative pending sum must reach the stored row (docs/design.md#session-failure-details, `add`).
    p.success = Math.min(PolicyResult.MAX_COUNT, p.success + success)
    p.failure = Math.min(PolicyResult.MAX_COUNT, p.failure + failure)
  }

  private addDetail(p: PolicyEntry, d: PolicyResult.FailureDetails): void {
    let e: DetailEntry | undefined
    if (p.index !== undefined) {
      const k = detailKey(d)
      e = p.index.get(k)
      if (e === undefined) {
        e = new DetailEntry({ ...d }, 0)
        p.details!.push(e)
        p.index.set(k, e)
        this.detailEntries++
      }
    } else {
      const details = p.details
      if (details !== undefined)
        for (let i = 0; i < details.length; i++)
          if (PolicyResult.detailsKeyEquals(details[i]!.detail, d)) {
            e = details[i]
            break
          }
      if (e === undefined) {
        e = new DetailEntry({ ...d }, 0)
        if (details === undefined) p.details = [e]
        else details.push(e)
        this.detailEntries++
        if (p.details!.length >= INDEX_FROM) p.index = indexOf(p.details!)
      }
    }
    e.count = PolicyResult.addCounts(e.count, d.failedSessionCount)
  }

  /** The aggregate as rows (in first-seen key order), leaving the buffer empty. */
  drain(): Array<NewResultRow> {
    const out: Array<NewResultRow> = new Array(this.order.length)
    for (let k = 0; k < this.order.length; k++) {
      const entry = this.order[k]!
      const results: Array<PolicyResult.PolicyResult> = []
      if (entry.first !== undefined) results.push(toResult(entry.first))
      if (entry.rest !== undefined) for (const p of entry.rest) results.push(toResult(p))
      out[k] = {
        policyDomain: entry.policyDomain,
        day: entry.day,
        recipientDomain: entry.recipientDomain,
        isHost: entry.isHost,
        sendReport: entry.sendReport,
        results
      }
    }
    this.byDay = new Map()
    this.lastDay = ""
    this.lastByPolicy = undefined
    this.order = []
    this.detailEntries = 0
    return out
  }
}

const NO_DETAILS: ReadonlyArray<PolicyResult.FailureDetails> = []

const toResult = (p: PolicyEntry): PolicyResult.PolicyResult => ({
  policy: { policyType: p.policyType, policyString: p.policyString, policyDomain: p.policyDomain, mxHost: p.mxHost },
  summary: { totalSuccessfulSessionCount: p.success, totalFailureSessionCount: p.failure },
  failureDetails:
    p.details === undefined
      ? NO_DETAILS
      : p.details.map((e) =>
          e.detail.failedSessionCount === e.count ? e.detail : { ...e.detail, failedSessionCount: e.count }
        )
})
