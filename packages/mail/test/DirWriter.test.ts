import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect } from "effect"
import { makeDirWriter } from "../src/DirWriter.js"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "tlsrpt-dirwriter-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)
const bytes = (s: string) => new TextEncoder().encode(s)

describe("DirWriter", () => {
  it.scoped("writes each message's files in order on its thread, many at once; retired when idle, started again", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const out = join(dir, "outbox") // made by the first write
      const writer = yield* makeDirWriter({ idle: Duration.millis(200) })
      assert.strictEqual(writer.threads(), 0)
      yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) =>
          writer.write(out, [
            { name: `${i}.eml`, data: bytes(`payload ${i}`) },
            { name: `${i}.json`, data: bytes(`envelope ${i}`) }
          ]),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(writer.threads(), 1)
      const names = yield* Effect.promise(() => readdir(out))
      assert.strictEqual(names.length, 100)
      assert.isFalse(names.some((n) => n.endsWith(".tmp")))
      assert.strictEqual(yield* Effect.promise(() => readFile(join(out, "49.json"), "utf8")), "envelope 49")
      // real time: the idle timer frees a real thread
      const afterIdle = Effect.sleep(Duration.millis(50)).pipe(
        Effect.withClock(Clock.make()),
        Effect.zipRight(Effect.sync(writer.threads)),
        Effect.repeat({ until: (n) => n === 0, times: 400 })
      )
      assert.strictEqual(yield* afterIdle, 0)
      // a view into a larger buffer: only its bytes; a string: as UTF-8
      yield* writer.write(out, [
        { name: "again.eml", data: bytes("xxagainyy").subarray(2, 7) },
        { name: "again.json", data: "é\n" }
      ])
      assert.strictEqual(yield* Effect.promise(() => readFile(join(out, "again.eml"), "utf8")), "again")
      assert.strictEqual(yield* Effect.promise(() => readFile(join(out, "again.json"), "utf8")), "é\n")
    })
  )

  it.scoped("a failed file fails its write with the reason, leaves no temporary file, and the next write goes on", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const writer = yield* makeDirWriter()
      const file = join(dir, "not-a-folder")
      yield* Effect.promise(() => writeFile(file, "x"))
      const reason = yield* Effect.flip(writer.write(join(file, "outbox"), [{ name: "a.eml", data: bytes("a") }]))
      assert.match(reason, /ENOTDIR/)
      yield* writer.write(dir, [{ name: "b.eml", data: bytes("b") }])
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(dir))).sort(), ["b.eml", "not-a-folder"])
    })
  )
})
