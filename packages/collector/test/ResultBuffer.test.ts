import { assert, describe, it } from "@effect/vitest"
import { type NewResultRow, RowMerge } from "@tlsrpt/store"
import { Either, FastCheck as fc } from "effect"
import { ResultBuffer } from "../src/ResultBuffer.js"
import { decodeOutcome, forEachRow, toRows } from "../src/SessionOutcome.js"
import { collidingJsonOutcome } from "./Arbitraries.js"
import { json } from "./Outcomes.js"

/** docs/design.md#row-merge, row by row through the store's one rule: the reference the buffer must match. */
const addAll = (
  state: Map<string, RowMerge.RowState>,
  rows: ReadonlyArray<NewResultRow>
): Map<string, RowMerge.RowState> => {
  for (const row of rows) {
    const key = `${row.policyDomain.ascii}|${row.day}|${row.recipientDomain.ascii}`
    state.set(key, RowMerge.addRow(state.get(key), row))
  }
  return state
}

const rowsOf = (outcomes: ReadonlyArray<unknown>): Array<NewResultRow> =>
  outcomes.flatMap((j) => toRows(Either.getOrThrow(decodeOutcome(j))))

const through = (rows: ReadonlyArray<NewResultRow>, buffer = new ResultBuffer()): Array<NewResultRow> => {
  for (const row of rows) buffer.add(row)
  return buffer.drain()
}

/** The rows added through `buffer` and drained at each cut (taken modulo the row count), merged. */
const drainedAtCuts = (
  rows: Parameters<typeof through>[0],
  cuts: ReadonlyArray<number>,
  buffer: ResultBuffer
): Map<string, RowMerge.RowState> => {
  const at = [...new Set(cuts.map((c) => (rows.length === 0 ? 0 : c % rows.length)))].sort((a, b) => a - b)
  let state = new Map<string, RowMerge.RowState>()
  let from = 0
  for (const to of [...at, rows.length]) {
    state = addAll(state, through(rows.slice(from, to), buffer))
    from = to
  }
  return state
}

describe("ResultBuffer", () => {
  it.prop(
    "adding drained batches to the store equals adding every row (docs/design.md#row-merge, docs/design.md#merge-rules)",
    { outcomes: fc.array(collidingJsonOutcome, { maxLength: 60 }), cut: fc.nat() },
    ({ outcomes, cut }) => {
      const rows = rowsOf(outcomes)
      const k = rows.length === 0 ? 0 : cut % rows.length
      const expected = addAll(new Map(), rows)
      const actual = addAll(addAll(new Map(), through(rows.slice(0, k))), through(rows.slice(k)))
      assert.deepStrictEqual([...actual.keys()], [...expected.keys()])
      assert.deepStrictEqual(actual, expected)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "one buffer drained again and again (its keys kept, or dropped past retainKeys) equals adding every row",
    {
      outcomes: fc.array(collidingJsonOutcome, { maxLength: 60 }),
      cuts: fc.array(fc.nat(), { maxLength: 6 }),
      retainKeys: fc.integer({ min: 0, max: 8 })
    },
    ({ outcomes, cuts, retainKeys }) => {
      const rows = rowsOf(outcomes)
      const buffer = new ResultBuffer(retainKeys)
      const state = drainedAtCuts(rows, cuts, buffer)
      const expected = addAll(new Map(), rows)
      assert.deepStrictEqual([...state.keys()], [...expected.keys()])
      assert.deepStrictEqual(state, expected)
      assert.strictEqual(buffer.size, 0)
      assert.strictEqual(buffer.details, 0)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "a buffer that forgets its kept keys between drains (at rest), and one asked to forget while keys are pending, equal adding every row",
    {
      outcomes: fc.array(collidingJsonOutcome, { maxLength: 60 }),
      cut: fc.nat(),
      pendingCut: fc.nat()
    },
    ({ outcomes, cut, pendingCut }) => {
      const rows = rowsOf(outcomes)
      const k = rows.length === 0 ? 0 : cut % rows.length
      const p = rows.length === 0 ? 0 : pendingCut % rows.length
      const buffer = new ResultBuffer()
      let state = addAll(new Map(), through(rows.slice(0, k), buffer))
      buffer.forget()
      for (const row of rows.slice(k, Math.max(k, p))) buffer.add(row)
      // keys pending: nothing is dropped
      buffer.forget()
      for (const row of rows.slice(Math.max(k, p))) buffer.add(row)
      state = addAll(state, buffer.drain())
      const expected = addAll(new Map(), rows)
      assert.deepStrictEqual([...state.keys()], [...expected.keys()])
      assert.deepStrictEqual(state, expected)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "drainJson gives each drained row's JSON, batch after batch (its cached parts stay right)",
    { outcomes: fc.array(collidingJsonOutcome, { maxLength: 60 }), cut: fc.nat() },
    ({ outcomes, cut }) => {
      const rows = rowsOf(outcomes)
      const k = rows.length === 0 ? 0 : cut % rows.length
      const viaJson = new ResultBuffer()
      const viaRows = new ResultBuffer()
      for (const part of [rows.slice(0, k), rows.slice(k), rows]) {
        for (const row of part) viaJson.add(row)
        for (const row of part) viaRows.add(row)
        const json: Array<unknown> = []
        assert.strictEqual(
          viaJson.drainJson((s) => json.push(JSON.parse(s))),
          viaRows.size
        )
        assert.deepStrictEqual(json, JSON.parse(JSON.stringify(viaRows.drain())))
      }
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "the hot path (forEachRow into addView) aggregates exactly like toRows into add",
    { outcomes: fc.array(collidingJsonOutcome, { maxLength: 60 }) },
    ({ outcomes }) => {
      const decoded = outcomes.map((j) => Either.getOrThrow(decodeOutcome(j)))
      const viaRows = new ResultBuffer()
      for (const o of decoded) for (const row of toRows(o)) viaRows.add(row)
      const viaView = new ResultBuffer()
      for (const o of decoded) forEachRow(o, (v) => viaView.addView(v))
      assert.strictEqual(viaView.size, viaRows.size)
      assert.strictEqual(viaView.details, viaRows.details)
      assert.deepStrictEqual(viaView.drain(), viaRows.drain())
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "MX hosts shared by recipients (a policy domain with several keys) over two days, drained again and again, equals adding every row",
    {
      sessions: fc.array(
        fc.record({
          mx: fc.integer({ min: 0, max: 11 }),
          recipient: fc.constantFrom("a.example", "b.example"),
          day: fc.constantFrom("2024-01-09T10:00:00Z", "2024-01-10T10:00:00Z"),
          failed: fc.boolean()
        }),
        { maxLength: 80 }
      ),
      cuts: fc.array(fc.nat(), { maxLength: 3 })
    },
    ({ sessions, cuts }) => {
      const rows = rowsOf(
        sessions.map(({ mx, recipient, day, failed }) =>
          json(recipient, {
            timestamp: day,
            mxHost: `mx${mx}.shared.example`,
            policies: [
              { type: "no-policy-found", scope: "recipient-domain", result: failed ? "failure" : "success" },
              { type: "no-policy-found", scope: "mx-host", result: "success" }
            ]
          })
        )
      )
      const buffer = new ResultBuffer()
      const state = drainedAtCuts(rows, cuts, buffer)
      const expected = addAll(new Map(), rows)
      assert.deepStrictEqual([...state.keys()], [...expected.keys()])
      assert.deepStrictEqual(state, expected)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it("merges equal policies and equal-by-key details, appends the others, in first-seen order", () => {
    const rows = rowsOf([
      ...[1, 2, 3].map(() => ({
        timestamp: "2024-01-09T10:00:00Z",
        recipientDomain: "example.com",
        mxHost: "mx.example.com",
        policies: [
          {
            type: "sts",
            policyLines: ["mode: enforce"],
            result: "failure",
            failureDetails: [{ resultType: "certificate-expired" }]
          }
        ]
      })),
      {
        timestamp: "2024-01-09T11:00:00Z",
        recipientDomain: "example.com",
        mxHost: "mx.example.com",
        policies: [
          {
            type: "sts",
            policyLines: ["mode: testing"],
            result: "success",
            failureDetails: [{ resultType: "certificate-expired", reasonCode: "x" }]
          }
        ]
      }
    ])
    const buffer = new ResultBuffer()
    for (const row of rows) buffer.add(row)
    assert.strictEqual(buffer.size, 1)
    assert.strictEqual(buffer.details, 2)
    const [row] = buffer.drain()
    assert.deepStrictEqual(
      row!.results.map((r) => [
        r.policy.policyString,
        r.summary.totalSuccessfulSessionCount,
        r.summary.totalFailureSessionCount,
        r.failureDetails.map((fd) => [fd.failureReasonCode, fd.failedSessionCount])
      ]),
      [
        [["mode: enforce"], 0, 3, [[undefined, 3]]],
        [["mode: testing"], 1, 0, [["x", 1]]]
      ]
    )
    assert.strictEqual(buffer.size, 0)
    assert.strictEqual(buffer.details, 0)
  })

  it("indexes a policy's details once there are many, with the same result", () => {
    const rows = rowsOf(
      Array.from({ length: 40 }, (_, i) => ({
        timestamp: "2024-01-09T10:00:00Z",
        recipientDomain: "example.com",
        mxHost: "mx.example.com",
        policies: [
          {
            type: "sts",
            result: "failure",
            failureDetails: [{ resultType: "validation-failure", reasonCode: `r${i % 13}` }]
          }
        ]
      }))
    )
    const [row] = through(rows)
    assert.deepStrictEqual(
      row!.results[0]!.failureDetails.map((fd) => [fd.failureReasonCode, fd.failedSessionCount]),
      Array.from({ length: 13 }, (_, i) => [`r${i}`, i === 0 ? 4 : i < 40 % 13 ? 3 + 1 : 3])
    )
  })
})
