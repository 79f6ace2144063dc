/**
 * `Effect.forEach(items, f, { concurrency, discard: true })` without a fiber per item: `concurrency`
 * fibers ("slots"), each taking the next item once its last one is done. The same order of starts and
 * the same bound; a round or a delivery pass of 10,000 items forks 8 fibers, not 10,000 (issue 15,
 * README "A fiber per slot"). The first failure interrupts the other slots, as `forEach` does.
 */
import { Effect } from "effect"

export const forEach = <A, E, R>(
  items: ReadonlyArray<A>,
  concurrency: number,
  f: (item: A, index: number) => Effect.Effect<void, E, R>
): Effect.Effect<void, E, R> =>
  Effect.suspend(() => {
    let next = 0
    const slot: Effect.Effect<void, E, R> = Effect.suspend(() => {
      const i = next++
      return i < items.length ? Effect.flatMap(f(items[i]!, i), () => slot) : Effect.void
    })
    return Effect.all(
      Array.from({ length: Math.min(Math.max(1, concurrency), items.length) }, () => slot),
      { concurrency: "unbounded", discard: true }
    )
  })
