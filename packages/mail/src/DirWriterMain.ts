/**
 * Entry of the outbox folder's writer thread (DirWriter.ts): writes each message of a batch with
 * plain synchronous file calls (DirOutbox.ts) and answers the batch in one message, each message's
 * error text or none, in batch order.
 */
import { parentPort } from "node:worker_threads"
import { type DirMessage, writeMessageSync } from "./DirOutbox.js"

export interface DirBatch {
  readonly dir: string
  readonly messages: ReadonlyArray<DirMessage>
}

const made = new Set<string>()

parentPort?.on("message", ({ dir, messages }: DirBatch) => {
  const errors: Array<string | undefined> = []
  for (const message of messages) {
    try {
      writeMessageSync(dir, message, made)
      errors.push(undefined)
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e))
    }
  }
  parentPort?.postMessage(errors)
})
