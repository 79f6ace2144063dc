/**
 * An in-memory `ResultStore` for the collector's unit tests: `addResults` merges with the store's
 * one rule (`RowMerge.addRow`, docs/design.md#row-merge), can be held closed (a blocked store) or made to fail, and reports
 * every committed batch on a queue. Only `addResults` and `listResults` are implemented.
 */
import type { PolicyResult } from "@tlsrpt/core"
import { type NewResultRow, ResultStore, RowMerge, StoreError } from "@tlsrpt/store"
import { type Context, Effect, Layer, Queue } from "effect"

export interface StoredRow {
  readonly policyDomain: string
  readonly day: string
  readonly recipientDomain: string
  isHost: boolean
  sendReport: boolean
  results: ReadonlyArray<PolicyResult.PolicyResult>
}

export interface FakeStore {
  readonly layer: Layer.Layer<ResultStore>
  /** Stored rows by key `policy|day|recipient`, in insertion order. */
  readonly rows: Map<string, StoredRow>
  /** Each committed batch (its row count). */
  readonly batches: Queue.Queue<number>
  /** Each call of `addResults`, when it starts (before the gate). */
  readonly attempts: Queue.Queue<number>
  /** `addResults` waits while this latch is closed. */
  readonly gate: Effect.Latch
  /** The next n calls fail with a StoreError (nothing stored). */
  failNext: number
  /** The next n calls die with a defect (nothing stored). */
  dieNext: number
  readonly calls: number
}

export const makeFakeStore = Effect.gen(function* () {
  const batches = yield* Queue.unbounded<number>()
  const attempts = yield* Queue.unbounded<number>()
  const gate = yield* Effect.makeLatch(true)
  const rows = new Map<string, StoredRow>()
  const control = { failNext: 0, dieNext: 0, calls: 0 }
  const addResults = (incoming: ReadonlyArray<NewResultRow>) =>
    Queue.offer(attempts, incoming.length).pipe(
      Effect.zipRight(gate.await),
      Effect.zipRight(
        Effect.suspend(() => {
          control.calls++
          if (control.dieNext > 0) {
            control.dieNext--
            return Effect.dieMessage("store bug")
          }
          if (control.failNext > 0) {
            control.failNext--
            return Effect.fail(new StoreError({ operation: "addResults", cause: new Error("disk full") }))
          }
          for (const row of incoming) {
            const key = `${row.policyDomain.ascii}|${row.day}|${row.recipientDomain.ascii}`
            const stored = rows.get(key)
            rows.set(key, {
              policyDomain: row.policyDomain.ascii,
              day: row.day,
              recipientDomain: row.recipientDomain.ascii,
              ...RowMerge.addRow(stored, row)
            })
          }
          return Queue.offer(batches, incoming.length)
        })
      ),
      Effect.asVoid
    )
  const notUsed = Effect.dieMessage("not used by the collector")
  const service = new Proxy(
    { addResults },
    { get: (target, prop) => (prop === "addResults" ? target.addResults : () => notUsed) }
  ) as unknown as Context.Tag.Service<ResultStore>
  const fake: FakeStore = {
    layer: Layer.succeed(ResultStore, service),
    rows,
    batches,
    attempts,
    gate,
    get failNext() {
      return control.failNext
    },
    set failNext(n: number) {
      control.failNext = n
    },
    get dieNext() {
      return control.dieNext
    },
    set dieNext(n: number) {
      control.dieNext = n
    },
    get calls() {
      return control.calls
    }
  }
  return fake
})
