/**
 * Entry of the `dir` transport's writer thread (DirWriter.ts): writes each message's files with
 * synchronous calls, one message after the other. Each file goes to a temporary name and is renamed
 * into place (a reader never sees half a file), in the order given (the payload, then the envelope
 * whose appearance means the pair is complete). A folder that is missing is made, once per message.
 */
import { randomBytes } from "node:crypto"
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parentPort } from "node:worker_threads"
import type { DirBatch, DirWriteReply } from "./DirWriter.js"

// Unique temporary names without a random draw per file: a prefix per thread and a counter.
const prefix = randomBytes(6).toString("hex")
let counter = 0

interface Write {
  readonly id: number
  readonly dir: string
  readonly files: ReadonlyArray<{ readonly name: string; readonly data: Uint8Array }>
}

const writeFiles = ({ dir, files }: Write) => {
  for (const { name, data } of files) {
    const tmp = join(dir, `.${name}.${prefix}${(counter++).toString(36)}.tmp`)
    try {
      writeFileSync(tmp, data)
      renameSync(tmp, join(dir, name))
    } catch (error) {
      rmSync(tmp, { force: true })
      throw error
    }
  }
}

const write = (job: Write): DirWriteReply => {
  try {
    try {
      writeFiles(job)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
      mkdirSync(job.dir, { recursive: true })
      writeFiles(job)
    }
    return { id: job.id }
  } catch (error) {
    return { id: job.id, error: error instanceof Error ? error.message : String(error) }
  }
}

parentPort?.on("message", ({ writes, buffer }: DirBatch) => {
  let start = 0
  const replies = writes.map(({ id, dir, files }) =>
    write({
      id,
      dir,
      files: files.map(({ name, end }) => {
        const data = new Uint8Array(buffer, start, end - start)
        start = end
        return { name, data }
      })
    })
  )
  parentPort?.postMessage(replies)
})
