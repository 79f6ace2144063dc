/** The reference test's six input rows (docs/design.md#reference-scenarios) from the shared fixture, as `NewResultRow`s. */
import { readFileSync } from "node:fs"
import { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Schema } from "effect"
import type { NewResultRow } from "../src/ResultStore.js"

const SeedRow = Schema.Struct({
  "policy-domain": Schema.String,
  day: Day.Day,
  "recipient-domain": Schema.String,
  "is-host": Schema.Boolean,
  "send-report": Schema.Boolean,
  results: Schema.Array(PolicyResult.PolicyResult)
})

const seed = Schema.decodeUnknownSync(Schema.Struct({ rows: Schema.Array(SeedRow) }))(
  JSON.parse(readFileSync(new URL("../../testkit/fixtures/seed.json", import.meta.url), "utf8"))
)

export const seedRows: ReadonlyArray<NewResultRow> = seed.rows.map((r) => ({
  policyDomain: Domain.unsafeMake(r["policy-domain"]),
  day: r.day,
  recipientDomain: Domain.unsafeMake(r["recipient-domain"]),
  isHost: r["is-host"],
  sendReport: r["send-report"],
  results: r.results
}))

export const seedDay = seedRows[0]!.day
