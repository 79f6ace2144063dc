/**
 * The worker's composition of the delivery loop (docs/design.md#delivery-loop): the loop and the
 * round share the one store layer, so a round's commit wakes the sleeping loop through the store's
 * `OutboxSignal`, and the report goes out without the clock moving.
 */
import { readdirSync } from "node:fs"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Day } from "@tlsrpt/core"
import { ResultStore } from "@tlsrpt/store"
import { Chunk, Clock, Duration, Effect, Layer, TestClock } from "effect"
import * as Config from "../src/Config.js"
import * as Layers from "../src/Layers.js"
import { tempDir } from "./Fixtures.js"

const T0 = Date.UTC(2024, 0, 10, 0, 5)

/** Repeats `check` on real time (the test runs on TestClock) until it holds, at most ~10 s. */
const eventually = (check: () => boolean) =>
  Effect.sync(check).pipe(
    Effect.zipLeft(Effect.sleep(Duration.millis(10)).pipe(Effect.withClock(Clock.make()))),
    Effect.repeat({ until: (ok) => ok, times: 1_000 })
  )

describe("the worker's delivery loop (docs/design.md#delivery-loop)", () => {
  it.scoped("a round's commit on the worker's store wakes the sleeping loop: the report is written at once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("tlsrpt-wake-")
      const config = yield* Config.load({ configFile: undefined, env: { TLSRPT_DATA_DIR: dir }, cwd: dir })
      assert.strictEqual(config.transport.type, "dir")
      const outboxDir = config.transport.type === "dir" ? config.transport.dir : ""
      yield* TestClock.setTime(T0)
      const storeLayer = Layers.store(config)
      const context = yield* Layer.build(
        Layer.merge(Layers.delivery(config, storeLayer, { background: true }), storeLayer)
      )
      // The loop ran its first pass on the empty outbox and sleeps (5 minutes at most).
      const slept = yield* TestClock.sleeps().pipe(
        Effect.zipLeft(Effect.yieldNow()),
        Effect.repeat({ until: (s) => Chunk.size(s) > 0 })
      )
      assert.deepStrictEqual(Chunk.toReadonlyArray(slept), [T0 + 5 * 60_000])

      const day = Day.fromMillis(Date.UTC(2024, 0, 9))
      yield* Effect.flatMap(ResultStore, (store) =>
        store.markSentAndEnqueueAll([
          {
            mark: { phase: "policy-domain", policyDomain: "example.org", day },
            messages: [
              {
                kind: "mailto",
                destination: "tlsrpt@example.org",
                envelopeFrom: "postmaster@sender.example",
                payload: new TextEncoder().encode("Subject: report\r\n\r\nbody\r\n"),
                reportId: "20240109.example.org@sender.example",
                policyDomain: "example.org",
                day
              }
            ]
          }
        ])
      ).pipe(Effect.provide(context))

      const written = () => {
        try {
          return readdirSync(outboxDir).some((f) => f.endsWith(".eml"))
        } catch {
          return false
        }
      }
      assert.isTrue(yield* eventually(written))
      assert.strictEqual(yield* Clock.currentTimeMillis, T0)
    }).pipe(Effect.provide(NodeContext.layer))
  )
})
