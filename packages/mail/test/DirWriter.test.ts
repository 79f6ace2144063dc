import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { type DirMessage, dirFileNames } from "../src/DirOutbox.js"
import { makeDirWriter } from "../src/DirWriter.js"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "tlsrpt-dirwriter-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const message = (id: number, payload = new TextEncoder().encode(`mail ${id}\r\n`)): DirMessage => ({
  id,
  kind: "mailto",
  destination: `tlsrpt@d${id}.example`,
  envelopeFrom: "postmaster@sender.example",
  reportId: `r${id}`,
  policyDomain: `d${id}.example`,
  day: "2024-01-09",
  payload
})

describe("DirWriter", () => {
  it.scoped("many writes at once, in two folders: every pair complete, each with its own bytes", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const writer = yield* makeDirWriter()
      const messages = Array.from({ length: 200 }, (_, i) => message(i))
      yield* Effect.forEach(messages, (m) => writer.write(join(dir, m.id % 2 === 0 ? "even" : "odd"), m), {
        concurrency: "unbounded"
      })
      for (const folder of ["even", "odd"]) {
        const files = yield* Effect.promise(() => readdir(join(dir, folder)))
        assert.strictEqual(files.length, 200, "100 payloads and 100 envelopes, no temporary file")
      }
      for (const m of messages) {
        const folder = join(dir, m.id % 2 === 0 ? "even" : "odd")
        const names = dirFileNames(m)
        assert.strictEqual(
          yield* Effect.promise(() => readFile(join(folder, names.payload), "utf8")),
          `mail ${m.id}\r\n`
        )
        const envelope = JSON.parse(yield* Effect.promise(() => readFile(join(folder, names.envelope), "utf8")))
        assert.strictEqual(envelope.id, m.id)
        assert.strictEqual(envelope.file, names.payload)
      }
    })
  )

  it.scoped("a failed write fails alone, with the file system's reason; the others of its batch land", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const writer = yield* makeDirWriter()
      const bad = message(2)
      // a folder where the payload goes: its rename fails
      yield* Effect.promise(async () => {
        const { mkdir } = await import("node:fs/promises")
        await mkdir(join(dir, dirFileNames(bad).payload))
      })
      const results = yield* Effect.forEach([message(1), bad, message(3)], (m) => Effect.either(writer.write(dir, m)), {
        concurrency: "unbounded"
      })
      assert.isTrue(Either.isRight(results[0]!))
      assert.isTrue(Either.isRight(results[2]!))
      const reason = Either.getLeft(results[1]!)
      assert.isTrue(reason._tag === "Some" && /EISDIR|ENOTEMPTY|EEXIST/.test(reason.value), String(results[1]))
      const files = (yield* Effect.promise(() => readdir(dir))).sort()
      assert.deepStrictEqual(
        files,
        [dirFileNames(bad).payload, ...[1, 3].flatMap((i) => Object.values(dirFileNames(message(i))))].sort()
      )
    })
  )

  it.scoped("two batches in flight go to two threads: a slow disk's kernel time spread over the cores", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const writer = yield* makeDirWriter({ threads: 2 })
      // one turn, two folders: two batches, each to the thread with fewer in flight
      yield* Effect.all([writer.write(join(dir, "a"), message(1)), writer.write(join(dir, "b"), message(2))], {
        concurrency: "unbounded"
      })
      assert.strictEqual(writer.threads(), 2)
      assert.strictEqual((yield* Effect.promise(() => readdir(join(dir, "a")))).length, 2)
      assert.strictEqual((yield* Effect.promise(() => readdir(join(dir, "b")))).length, 2)
    })
  )

  it.scoped("a thread starts with the first write and is retired after the idle period; a later write starts it", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const writer = yield* makeDirWriter({ idle: "100 millis" })
      assert.strictEqual(writer.threads(), 0)
      yield* writer.write(dir, message(1))
      assert.strictEqual(writer.threads(), 1)
      // real time: the idle timer frees a real thread
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 400)))
      assert.strictEqual(writer.threads(), 0)
      yield* writer.write(dir, message(2))
      assert.strictEqual(writer.threads(), 1)
      assert.strictEqual((yield* Effect.promise(() => readdir(dir))).length, 4)
    })
  )

  it.scoped("a thread that dies fails its writes with the reason; the next write starts a thread again", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      // an entry that does not exist: each thread fails as it starts
      const writer = yield* makeDirWriter({ threads: 1, entry: "NoSuchDirWriterEntry" })
      const first = yield* Effect.flip(writer.write(dir, message(1)))
      assert.match(first, /^writer thread (failed|exited)/)
      assert.strictEqual(writer.threads(), 0)
      const second = yield* Effect.flip(writer.write(dir, message(2)))
      assert.match(second, /^writer thread (failed|exited)/)
      assert.deepStrictEqual(yield* Effect.promise(() => readdir(dir)), [])
    })
  )

  it.scoped("a payload that is a view of a larger buffer is written as the view", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const writer = yield* makeDirWriter()
      const big = new TextEncoder().encode("xxxxmail 5\r\nyyyy")
      const m = message(5, big.subarray(4, 12))
      yield* writer.write(dir, m)
      assert.strictEqual(
        yield* Effect.promise(() => readFile(join(dir, dirFileNames(m).payload), "utf8")),
        "mail 5\r\n"
      )
    })
  )
})
