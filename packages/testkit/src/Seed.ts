/**
 * The seed's reference test as data (`fixtures/seed.json`, from docs/design.md#reference-scenarios):
 * its DNS records, rows in the CLI import format and expected reports in our JSON conventions.
 */
import { readFileSync } from "node:fs"
import { type Day, Domain, PolicyResult, Report } from "@tlsrpt/core"
import { Schema } from "effect"

export interface SeedRowJson {
  readonly "policy-domain": string
  readonly day: string
  readonly "recipient-domain": string
  readonly "is-host": boolean
  readonly "send-report": boolean
  readonly results: ReadonlyArray<unknown>
}

export interface SeedFixtures {
  readonly dns_txt_initial: Readonly<Record<string, ReadonlyArray<string>>>
  readonly submitter: { readonly domain: string; readonly organizationName: string; readonly contactInfo: string }
  readonly rows: ReadonlyArray<SeedRowJson>
  readonly reports: Readonly<Record<"report1" | "report2" | "report3", Report.ReportJson>>
}

export const fixtures: SeedFixtures = JSON.parse(
  readFileSync(new URL("../fixtures/seed.json", import.meta.url), "utf8")
) as SeedFixtures

/** The day of the seed's rows. */
export const day = fixtures.rows[0]!.day as Day.Day

const decodeResults = Schema.decodeUnknownSync(Schema.Array(PolicyResult.PolicyResult))

/** The seed rows as store input, optionally with every result's failures removed (scenarios 5, 6). */
export const rows = (options?: { readonly withoutFailures?: boolean }) =>
  fixtures.rows.map((r) => ({
    policyDomain: Domain.unsafeMake(r["policy-domain"]),
    day: r.day as Day.Day,
    recipientDomain: Domain.unsafeMake(r["recipient-domain"]),
    isHost: r["is-host"],
    sendReport: r["send-report"],
    results: decodeResults(r.results).map((p) =>
      options?.withoutFailures
        ? { ...p, summary: { ...p.summary, totalFailureSessionCount: 0 }, failureDetails: [] }
        : p
    )
  }))

/** An expected report as decoded data, optionally with failures zeroed (scenario 6). */
export const report = (name: "report1" | "report2" | "report3", options?: { readonly withoutFailures?: boolean }) => {
  const r = Schema.decodeUnknownSync(Report.Report)(fixtures.reports[name])
  return options?.withoutFailures
    ? {
        ...r,
        policies: r.policies.map((p) => ({
          ...p,
          summary: { ...p.summary, totalFailureSessionCount: 0 },
          failureDetails: []
        }))
      }
    : r
}
