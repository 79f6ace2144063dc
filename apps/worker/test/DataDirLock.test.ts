import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as DataDirLock from "../src/DataDirLock.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(NodePath.join(tmpdir(), "tlsrpt-lock-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("DataDirLock", () => {
  it.scoped("one holder at a time; released with its scope; a dead owner's lock is taken over", () =>
    Effect.gen(function* () {
      const dir = NodePath.join(yield* tempDir, "data")
      const file = DataDirLock.lockFile(dir)
      const scope = yield* Scope.make()
      yield* DataDirLock.acquire(dir).pipe(Scope.extend(scope))
      assert.strictEqual(readFileSync(file, "utf8").trim(), String(process.pid))
      const second = yield* Effect.exit(Effect.scoped(DataDirLock.acquire(dir)))
      assert.isTrue(Exit.isFailure(second))
      assert.deepStrictEqual(
        Exit.isFailure(second) && second.cause._tag === "Fail"
          ? [second.cause.error._tag, second.cause.error.file]
          : [],
        ["DataDirLocked", file]
      )
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(existsSync(file))

      // killed -9: the file stays with a pid that no longer runs (above any pid_max), or holds no pid
      for (const content of ["2147483646\n", ""]) {
        writeFileSync(file, content)
        const taken = yield* Effect.scoped(
          Effect.map(DataDirLock.acquire(dir), () => readFileSync(file, "utf8").trim())
        )
        assert.strictEqual(taken, String(process.pid))
        assert.isFalse(existsSync(file))
      }
    })
  )
})
