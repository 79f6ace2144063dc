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
  /** The batch it was last counted in: it is one of its key's `counted` policies iff this is the current batch. */
  batch = -1
  success = 0
  failure = 0
  details: Array<DetailEntry> | undefined = undefined
  /** Built once a policy holds many distinct details, to keep adding O(1). */
  index: Map<string, DetailEntry> | undefined = undefined
  /** The start of its JSON result, `{"policy":{…}` (`drainJson`), made once. */
  json: string | undefined = undefined
  constructor(
    readonly policyType: PolicyResult.PolicyType,
    readonly policyString: ReadonlyArray<string>,
    readonly policyDomain: string,
    readonly mxHost: ReadonlyArray<string>
  ) {}
}

/** Shared by keys without a policy yet; never written (a key's first policy replaces it). */
const NO_POLICIES: Array<PolicyEntry> = []

class KeyEntry {
  /** The batch (`ResultBuffer.batch`) this key was last counted in. */
  batch = -1
  /**
   * The key's policies: the first `counted` are this batch's, in first-seen order; the rest are
   * earlier batches', kept to be counted again without allocating.
   */
  policies: Array<PolicyEntry> = NO_POLICIES
  counted = 0
  /** The policy a row was last added to: a session's next row for the key is most often the same policy. */
  last: PolicyEntry | undefined = undefined
  /** The start of its JSON row, `{` and the key's fields (`drainJson`), made once. */
  json: string | undefined = undefined
  /** `recipientDomain.ascii`, compared without reaching into the Domain. */
  readonly recipient: string
  constructor(
    readonly policyDomain: Domain.Domain,
    readonly day: Day.Day,
    readonly recipientDomain: Domain.Domain,
    public isHost: boolean,
    public sendReport: boolean
  ) {
    this.recipient = recipientDomain.ascii
  }
}

/** A day's keys: policy domain → the entry, or recipient domain → entry once a policy domain has several. */
class DaySlot {
  readonly byPolicy = new Map<string, KeyEntry | Map<string, KeyEntry>>()
  keys = 0
  batch = -1
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

/** Index of the policy equal to the given one in `list[from, to)` (docs/design.md#policy-merge), or -1. */
const findPolicy = (
  list: ReadonlyArray<PolicyEntry>,
  from: number,
  to: number,
  policyType: string,
  policyString: ReadonlyArray<string>,
  policyDomain: string,
  mxHost: ReadonlyArray<string>
): number => {
  for (let i = from; i < to; i++) if (samePolicy(list[i]!, policyType, policyString, policyDomain, mxHost)) return i
  return -1
}

/** A key keeps at most this many policies of earlier batches (a policy that changes keeps no garbage). */
const KEEP_POLICIES = 4

export class ResultBuffer {
  /**
   * Keys are kept across drains (up to `retainKeys`, and only for days the last batch touched), their
   * counts zeroed: a steady stream of the same keys then allocates nothing per flush. Rebuilding the
   * maps and entries for every batch made each batch's structure live just long enough to be promoted
   * to the old generation and die there (the ingest bench: heap swinging 60 → 240 MB, GC ~20 % of CPU).
   */
  constructor(private readonly retainKeys = 100_000) {}

  // day → its keys. Keyed by the domains' own strings, whose hashes V8 caches, where a concatenated
  // key would be built and hashed for every row.
  private byDay = new Map<string, DaySlot>()
  private lastDay = ""
  private lastSlot: DaySlot | undefined
  private retained = 0
  /** The current batch's number: an entry or day with another one holds nothing of this batch. */
  private batch = 0
  /** This batch's keys in first-seen order, which becomes the store's insertion order (row ids, docs/design.md#ordering). */
  private order: Array<KeyEntry> = []
  private detailEntries = 0

  /** Distinct (policy domain, day, recipient domain) keys held. */
  get size(): number {
    return this.order.length
  }

  /**
   * Drops the keys kept from earlier batches (none is pending): a collector at rest keeps nothing for
   * a stream that has stopped (`Collector`, docs/design.md#thread-memory). Only between batches.
   */
  forget(): void {
    if (this.order.length > 0) return
    this.byDay = new Map()
    this.retained = 0
    this.lastDay = ""
    this.lastSlot = undefined
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
    let slot = this.lastSlot
    if (day !== this.lastDay || slot === undefined) {
      slot = this.byDay.get(day)
      if (slot === undefined) {
        slot = new DaySlot()
        this.byDay.set(day, slot)
      }
      slot.batch = this.batch
      this.lastDay = day
      this.lastSlot = slot
    }
    const byPolicy = slot.byPolicy
    const recipient = recipientDomain.ascii
    const found = byPolicy.get(policyDomain.ascii)
    let entry: KeyEntry | undefined
    if (found === undefined) {
      entry = new KeyEntry(policyDomain, day, recipientDomain, isHost, sendReport)
      byPolicy.set(policyDomain.ascii, entry)
    } else if (found instanceof Map) {
      entry = found.get(recipient)
      if (entry === undefined) {
        entry = new KeyEntry(policyDomain, day, recipientDomain, isHost, sendReport)
        found.set(recipient, entry)
      }
    } else if (found.recipient === recipient) entry = found
    else {
      entry = new KeyEntry(policyDomain, day, recipientDomain, isHost, sendReport)
      byPolicy.set(
        policyDomain.ascii,
        new Map([
          [found.recipient, found],
          [recipient, entry]
        ])
      )
    }
    if (entry.batch === this.batch) {
      entry.isHost = isHost
      if (sendReport) entry.sendReport = true
      return entry
    }
    // The key's first row in this batch: it starts as the row gives it (docs/design.md#row-merge).
    if (entry.batch === -1) {
      slot.keys++
      this.retained++
    }
    entry.batch = this.batch
    entry.isHost = isHost
    entry.sendReport = sendReport
    entry.counted = 0
    if (entry.policies.length > KEEP_POLICIES) entry.policies.length = 0
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
    let p = entry.last
    // The hot path: the policy this key's last row went to, already counted in this batch.
    if (p !== undefined && p.batch === this.batch && samePolicy(p, policyType, policyString, policyDomain, mxHost)) {
      for (let i = 0; i < details.length; i++) this.addDetail(p, details[i]!)
      p.success = Math.min(PolicyResult.MAX_COUNT, p.success + success)
      p.failure = Math.min(PolicyResult.MAX_COUNT, p.failure + failure)
      return
    }
    let list = entry.policies
    const counted = entry.counted
    let at = findPolicy(list, 0, counted, policyType, policyString, policyDomain, mxHost)
    if (at === -1) {
      // New in this batch: an earlier batch's entry is reused with its counts zeroed, moved up to
      // the end of this batch's policies (first-seen order).
      at = findPolicy(list, counted, list.length, policyType, policyString, policyDomain, mxHost)
      if (at === -1) {
        p = new PolicyEntry(policyType, policyString, policyDomain, mxHost)
        // A key's first policy gets an array of its own of one element (a push would reserve 17).
        if (list.length === 0) entry.policies = list = [p]
        else list.push(p)
        at = list.length - 1
      } else {
        p = list[at]!
        p.success = 0
        p.failure = 0
        p.details = undefined
        p.index = undefined
      }
      list[at] = list[counted]!
      list[counted] = p
      entry.counted = counted + 1
      p.batch = this.batch
      // docs/design.md#policy-merge: a new policy is appended unchanged; its own details are not merged among themselves.
      if (details.length > 0) {
        p.details = details.map((d) => new DetailEntry({ ...d }, d.failedSessionCount))
        this.detailEntries += details.length
        if (p.details.length >= INDEX_FROM) p.index = indexOf(p.details)
      }
    } else {
      p = list[at]!
      for (let i = 0; i < details.length; i++) this.addDetail(p, details[i]!)
    }
    entry.last = p
    // Saturate at the top only: a negative pending sum must reach the stored row (docs/design.md#session-failure-details, `add`).
    p.success = Math.min(PolicyResult.MAX_COUNT, p.success + success)
    p.failure = Math.min(PolicyResult.MAX_COUNT, p.failure + failure)
  }

  private addDetail(p: PolicyEntry, d: PolicyResult.FailureDetails): void {
    const k = p.index === undefined ? undefined : detailKey(d)
    let e = k === undefined ? p.details?.find((x) => PolicyResult.detailsKeyEquals(x.detail, d)) : p.index!.get(k)
    if (e === undefined) {
      e = new DetailEntry({ ...d }, 0)
      if (p.details === undefined) p.details = [e]
      else p.details.push(e)
      this.detailEntries++
      if (k !== undefined) p.index!.set(k, e)
      else if (p.details.length >= INDEX_FROM) p.index = indexOf(p.details)
    }
    e.count = PolicyResult.addCounts(e.count, d.failedSessionCount)
  }

  /** This batch's aggregate as rows (in first-seen key order), leaving the buffer empty. */
  drain(): Array<NewResultRow> {
    const order = this.order
    const out: Array<NewResultRow> = new Array(order.length)
    for (let k = 0; k < order.length; k++) {
      const entry = order[k]!
      out[k] = {
        policyDomain: entry.policyDomain,
        day: entry.day,
        recipientDomain: entry.recipientDomain,
        isHost: entry.isHost,
        sendReport: entry.sendReport,
        results: toResults(entry)
      }
    }
    this.reset()
    return out
  }

  /**
   * `drain` as the JSON of each row (what `JSON.stringify` gives for it, but for the order of the
   * keys), handed to `f` one at a time; returns the number of rows. The Collector encodes them for
   * its writer thread, so a batch never exists as an object graph: 10,000 rows built at once outlive
   * young-generation collections and die in the old generation (the ingest bench's heap swung by
   * ~200 MB). The parts that do not change (a key's fields, a policy) are made once and kept.
   */
  drainJson(f: (json: string) => void): number {
    const order = this.order
    for (let k = 0; k < order.length; k++) {
      const entry = order[k]!
      entry.json ??= flatPrefix({
        policyDomain: entry.policyDomain,
        day: entry.day,
        recipientDomain: entry.recipientDomain
      })
      let json = `${entry.json},"isHost":${entry.isHost},"sendReport":${entry.sendReport},"results":[`
      for (let i = 0; i < entry.counted; i++) {
        const p = entry.policies[i]!
        p.json ??= flatPrefix({
          policy: {
            policyType: p.policyType,
            policyString: p.policyString,
            policyDomain: p.policyDomain,
            mxHost: p.mxHost
          }
        })
        json += `${i > 0 ? "," : ""}${p.json},"summary":{"totalSuccessfulSessionCount":${p.success},"totalFailureSessionCount":${p.failure}},"failureDetails":${p.details === undefined ? "[]" : JSON.stringify(detailsOf(p))}}`
      }
      f(`${json}]}`)
    }
    const rows = order.length
    this.reset()
    return rows
  }

  private reset(): void {
    // Keys of days this batch did not touch are dropped (the sessions have moved on), all of them
    // when more than `retainKeys` are kept.
    for (const [day, slot] of this.byDay)
      if (slot.batch !== this.batch) {
        this.byDay.delete(day)
        this.retained -= slot.keys
      }
    if (this.retained > this.retainKeys) {
      this.byDay = new Map()
      this.retained = 0
    }
    this.batch++
    this.lastDay = ""
    this.lastSlot = undefined
    this.order = []
    this.detailEntries = 0
  }
}

const NO_DETAILS: ReadonlyArray<PolicyResult.FailureDetails> = []

/**
 * The JSON of `value` without its closing brace, for a kept part of `drainJson`'s rows: one flat
 * string (and V8's slice of it). Built with a template, a kept part was a tree of string pieces
 * (V8 cons strings) that held 28 MB for the 40,000 keys of the ingest bench instead of ~8.
 */
const flatPrefix = (value: object): string => JSON.stringify(value).slice(0, -1)

const toResults = (entry: KeyEntry): Array<PolicyResult.PolicyResult> => {
  const out: Array<PolicyResult.PolicyResult> = new Array(entry.counted)
  for (let i = 0; i < entry.counted; i++) out[i] = toResult(entry.policies[i]!)
  return out
}

const detailsOf = (p: PolicyEntry): ReadonlyArray<PolicyResult.FailureDetails> =>
  p.details === undefined
    ? NO_DETAILS
    : p.details.map((e) =>
        e.detail.failedSessionCount === e.count ? e.detail : { ...e.detail, failedSessionCount: e.count }
      )

const toResult = (p: PolicyEntry): PolicyResult.PolicyResult => ({
  policy: { policyType: p.policyType, policyString: p.policyString, policyDomain: p.policyDomain, mxHost: p.mxHost },
  summary: { totalSuccessfulSessionCount: p.success, totalFailureSessionCount: p.failure },
  failureDetails: detailsOf(p)
})
