import type { Worker } from "node:worker_threads"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ThreadEntry from "../src/ThreadEntry.js"

/** The young generation a probe thread reached (test/HeapProbeThread.ts). */
const youngOf = (w: Worker) =>
  Effect.async<number>((resume) => {
    w.once("message", (bytes: number) => {
      void w.terminate()
      resume(Effect.succeed(bytes))
    })
  })

const MB = 1024 * 1024

describe("ThreadEntry.spawn", () => {
  it.live("semiSpaceMb bounds that thread's young generation; threads started after it get the process's again", () =>
    Effect.gen(function* () {
      const small = yield* youngOf(ThreadEntry.spawn(import.meta.url, "HeapProbeThread", { semiSpaceMb: 1 }))
      const usual = yield* youngOf(ThreadEntry.spawn(import.meta.url, "HeapProbeThread"))
      // Two semi-spaces of 1 MB; the other thread grows past that (V8's default semi-space is 16 MB).
      assert.isAtMost(small, 2 * MB)
      assert.isAbove(usual, 2 * MB)
    })
  )
})
