/**
 * The row merge of docs/design.md#row-merge, the one copy of the rule: the SQL store, the
 * collector's tests and its in-memory fakes all add rows through `addRow`. (The collector's
 * `ResultBuffer` is a mutable fast path of the same rule, tied to it by a property test.)
 */
import { PolicyResult } from "@tlsrpt/core"

/** What a result row holds besides its key and bookkeeping. */
export interface RowState {
  readonly isHost: boolean
  readonly sendReport: boolean
  readonly results: ReadonlyArray<PolicyResult.PolicyResult>
}

/**
 * `row` added to a key's stored state (`undefined`: a new key, which holds its first row as given).
 * IsHost: the last writer wins; SendReport: sticky true; results merged (docs/design.md#merge-rules).
 */
export const addRow = (stored: RowState | undefined, row: RowState): RowState =>
  stored === undefined
    ? { isHost: row.isHost, sendReport: row.sendReport, results: row.results }
    : {
        isHost: row.isHost,
        sendReport: stored.sendReport || row.sendReport,
        results: PolicyResult.merge(stored.results, row.results)
      }

/** Rows added in order. */
export const addRows = (stored: RowState | undefined, rows: ReadonlyArray<RowState>): RowState | undefined =>
  rows.reduce<RowState | undefined>(addRow, stored)
