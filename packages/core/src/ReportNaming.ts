/**
 * Names and header values of one report (docs/design.md#report-header, docs/design.md#message-composition, docs/design.md#each-report-describes-its-own-day: every report describes
 * the day of its own rows). All domains are written in A-label form.
 */
import * as Day from "./Day.js"
import type { Domain } from "./Domain.js"
import type { DateRange } from "./Report.js"

/**
 * `<YYYYMMDD>.<policy domain>@<submitter>` (docs/design.md#report-header). `mxHost` marks the MX-host report of a domain
 * that is also a recipient domain the same day: both reports would otherwise share one report-id,
 * which RFC 8460 §4.4 requires to be unique (mox reuses it).
 */
export const reportId = (
  day: Day.Day,
  policyDomain: Domain,
  submitter: Domain,
  options?: { readonly mxHost?: boolean | undefined }
): string => `${Day.compact(day)}.${policyDomain.ascii}${options?.mxHost ? "+mx" : ""}@${submitter.ascii}`

/** The whole UTC day, `T00:00:00Z` to `T23:59:59Z`, as in the RFC 8460 example. */
export const dateRange = (day: Day.Day): DateRange => ({
  startDatetime: new Date(Day.startMillis(day)),
  endDatetime: new Date(Day.endMillis(day) - 1000)
})

/** RFC 8460 §5.3: `submitter!policy-domain!begin-timestamp!end-timestamp.json.gz` (unix seconds). */
export const filename = (day: Day.Day, policyDomain: Domain, submitter: Domain): string =>
  `${submitter.ascii}!${policyDomain.ascii}!${Day.startMillis(day) / 1000}!${Day.endMillis(day) / 1000 - 1}.json.gz`

/** RFC 8460 §5.3 Subject, report-id in angle brackets. */
export const subject = (policyDomain: Domain, submitter: Domain, id: string): string =>
  `Report Domain: ${policyDomain.ascii} Submitter: ${submitter.ascii} Report-ID: <${id}>`

/** The two headers RFC 8460 §5.3 requires (both covered by the DKIM signature). */
export const headers = (policyDomain: Domain, submitter: Domain): Readonly<Record<string, string>> => ({
  "TLS-Report-Domain": policyDomain.ascii,
  "TLS-Report-Submitter": submitter.ascii
})

/** The text part's `Period:` line bounds, `YYYY-MM-DD HH:MM:SS` (docs/design.md#message-composition: end is midnight itself). */
export const period = (day: Day.Day): { readonly begin: string; readonly end: string } => {
  const fmt = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ")
  return { begin: fmt(Day.startMillis(day)), end: fmt(Day.endMillis(day)) }
}

export const MEDIA_TYPE_GZIP = "application/tlsrpt+gzip"
export const MEDIA_TYPE_JSON = "application/tlsrpt+json"
