import { assert, describe, it } from "@effect/vitest"
import { PolicyResult } from "@tlsrpt/core"
import { FastCheck as fc } from "effect"
import * as RowMerge from "../src/RowMerge.js"

const result = fc
  .record({ success: fc.nat(5), failure: fc.nat(5), type: fc.constantFrom("sts" as const, "tlsa" as const) })
  .map(({ success, failure, type }) => PolicyResult.make(type, `${type}.example`, { success, failure }))
const row = fc.record({ isHost: fc.boolean(), sendReport: fc.boolean(), results: fc.array(result, { maxLength: 3 }) })

describe("RowMerge (docs/design.md#row-merge)", () => {
  it.prop(
    "IsHost is the last row's, SendReport sticky true, results merged after the first row kept as given",
    [fc.array(row, { minLength: 1, maxLength: 6 })],
    ([rows]) => {
      const state = RowMerge.addRows(undefined, rows)!
      assert.strictEqual(state.isHost, rows[rows.length - 1]!.isHost)
      assert.strictEqual(
        state.sendReport,
        rows.some((r) => r.sendReport)
      )
      const [first, ...rest] = rows
      assert.deepStrictEqual(
        state.results,
        rest.reduce((acc, r) => PolicyResult.merge(acc, r.results), first!.results)
      )
    }
  )

  it("a new key keeps its first row's results as given, equal policies included", () => {
    const twice = [
      PolicyResult.make("sts", "a", { success: 1, failure: 0 }),
      PolicyResult.make("sts", "a", { success: 2, failure: 0 })
    ]
    assert.deepStrictEqual(
      RowMerge.addRow(undefined, { isHost: false, sendReport: true, results: twice }).results,
      twice
    )
  })
})
