/**
 * A thread for test/ThreadEntry.test.ts: makes short-lived garbage until its young generation has
 * grown as far as V8 lets it, then posts the young generation's size in bytes.
 */
import { getHeapSpaceStatistics } from "node:v8"
import { parentPort } from "node:worker_threads"

let keep: Array<{ readonly i: number; readonly s: string }> = []
for (let i = 0; i < 2_000_000; i++) {
  keep.push({ i, s: `x${i}` })
  if (keep.length > 100_000) keep = []
}
const young = getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? -1
parentPort?.postMessage(young)
