/**
 * `Collector.offerRows` / `space`: the datagram source's synchronous path. A full buffer refuses
 * (takes nothing) until a flush has taken it.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Day } from "@tlsrpt/core"
import { ResultStore } from "@tlsrpt/store"
import { Effect, Either, Fiber, Layer } from "effect"
import { Collector } from "../src/Collector.js"
import * as Datagram from "../src/Datagram.js"

const row = (d: string) =>
  Either.getOrThrow(Datagram.toRow({ d, policies: [{ "policy-type": 2, f: 0 }] }, "2026-01-15" as Day.Day))

const Small = Collector.layer({ flushRows: 2, maxPendingKeys: 2, flushInterval: "1 hour" }).pipe(
  Layer.provideMerge(ResultStore.layerMemory)
)

describe("Collector.offerRows", () => {
  it.scoped("takes rows until the buffer is full, then refuses until a flush has taken it", () =>
    Effect.gen(function* () {
      const collector = yield* Collector
      const store = yield* ResultStore
      assert.isTrue(collector.offerRows([row("a.example")]))
      assert.isTrue(collector.offerRows([row("b.example")]))
      assert.isFalse(collector.offerRows([row("c.example")]))
      // The refusal woke the flush fiber; `space` returns once it has taken the buffer.
      yield* collector.space
      assert.isTrue(collector.offerRows([row("c.example")]))
      yield* collector.flush
      const rows = yield* store.listResults()
      assert.deepStrictEqual(rows.map((r) => r.policyDomain).sort(), ["a.example", "b.example", "c.example"])
    }).pipe(Effect.provide(Small))
  )

  it.scoped("space waits while the buffer is full", () =>
    Effect.gen(function* () {
      const collector = yield* Collector
      collector.offerRows([row("a.example"), row("b.example")])
      const waiting = yield* Effect.fork(collector.space)
      yield* collector.flush
      yield* Fiber.join(waiting)
      assert.isTrue(collector.offerRows([row("c.example")]))
    }).pipe(Effect.provide(Small))
  )
})
