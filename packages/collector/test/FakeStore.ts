/**
 * The real store (`Store.layerMemory`, a private in-memory SQLite: rows merge by the store's own rule,
 * docs/design.md#row-merge) with test controls in front of `addResults`: it can be held closed (a
 * blocked store) or made to fail or die before the real write, and it reports every committed batch
 * on a queue. Every other `ResultStore` member is the real store's.
 */
import type { PolicyResult } from "@tlsrpt/core"
import { type NewResultRow, ResultStore, Store, StoreError } from "@tlsrpt/store"
import { Context, Effect, Layer, Queue } from "effect"

export interface StoredRow {
  readonly policyDomain: string
  readonly day: string
  readonly recipientDomain: string
  readonly isHost: boolean
  readonly sendReport: boolean
  readonly results: ReadonlyArray<PolicyResult.PolicyResult>
}

export interface FakeStore {
  readonly layer: Layer.Layer<ResultStore>
  /** The store's rows by key `policy|day|recipient`, as read back after the last committed batch. */
  readonly rows: ReadonlyMap<string, StoredRow>
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

/** The real in-memory store behind the controls; it lives as long as the calling scope. */
export const makeFakeStore = Effect.gen(function* () {
  const real = Context.get(yield* Layer.build(Store.layerMemory), ResultStore)
  const batches = yield* Queue.unbounded<number>()
  const attempts = yield* Queue.unbounded<number>()
  const gate = yield* Effect.makeLatch(true)
  const rows = new Map<string, StoredRow>()
  const control = { failNext: 0, dieNext: 0, calls: 0 }
  // What the store holds after a commit, read through its own listing.
  const readBack = Effect.tap(real.listResults(), (stored) =>
    Effect.sync(() => {
      rows.clear()
      for (const r of stored) rows.set(`${r.policyDomain}|${r.day}|${r.recipientDomain}`, r)
    })
  )
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
          return real
            .addResults(incoming)
            .pipe(Effect.zipRight(readBack), Effect.zipRight(Queue.offer(batches, incoming.length)))
        })
      ),
      Effect.asVoid
    )
  const fake: FakeStore = {
    layer: Layer.succeed(ResultStore, { ...real, addResults }),
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
