import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Slots } from "../src/index.js"

describe("Slots.forEach", () => {
  it.effect("runs every item once, starts them in order, never more than the bound at once", () =>
    Effect.gen(function* () {
      const items = Array.from({ length: 50 }, (_, i) => i)
      const started: Array<number> = []
      let running = 0
      let most = 0
      yield* Slots.forEach(items, 4, (item, i) =>
        Effect.gen(function* () {
          assert.strictEqual(item, i)
          started.push(item)
          most = Math.max(most, ++running)
          yield* Effect.yieldNow()
          running--
        })
      )
      assert.deepStrictEqual(started, items)
      assert.strictEqual(most, 4)
    })
  )

  it.effect("fails with the first failure and starts nothing after it", () =>
    Effect.gen(function* () {
      const started: Array<number> = []
      const result = yield* Effect.either(
        Slots.forEach([0, 1, 2, 3, 4, 5], 1, (i) =>
          Effect.suspend(() => {
            started.push(i)
            return i === 2 ? Effect.fail("two") : Effect.void
          })
        )
      )
      assert.deepStrictEqual(result, Either.left("two"))
      assert.deepStrictEqual(started, [0, 1, 2])
    })
  )

  it.effect("an empty list runs nothing", () => Slots.forEach([], 8, () => Effect.die("no item")))
})
