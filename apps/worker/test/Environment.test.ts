import { readFileSync } from "node:fs"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { defaultConfig } from "@tlsrpt/reporter"
import { Duration, Either, Redacted } from "effect"
import * as Config from "../src/Config.js"
import * as Environment from "../src/config/Environment.js"

describe("Environment", () => {
  it("each variable of the README is the TLSRPT_ name of the key path it overrides", () => {
    const readme = readFileSync(NodePath.resolve(import.meta.dirname, "../../../README.md"), "utf8")
    const rows = [...readme.matchAll(/^\| `([a-zA-Z.]+)`[^\n]*?\| `(TLSRPT_[A-Z_]+)`/gm)]
    assert.isAbove(rows.length, 20)
    for (const [, key, env] of rows) {
      if (key === "transport") continue // TLSRPT_TRANSPORT_URL / _DIR replace the object
      assert.strictEqual(Environment.envName(key!.split(".")), env, key)
    }
  })

  it("TLSRPT_DATABASE_URL replaces database with { type: postgres }; it excludes TLSRPT_DATABASE", () => {
    const merged = Either.getOrThrow(Config.applyEnv({ database: "x.db" }, { TLSRPT_DATABASE_URL: "postgres://db/t" }))
    assert.deepStrictEqual(merged.json.database, { type: "postgres", url: "postgres://db/t" })
    assert.strictEqual(merged.sources.get("database"), "TLSRPT_DATABASE_URL")
    const file = Either.getOrThrow(Config.decode(merged.json, merged.sources))
    const c = Either.getOrThrow(Config.resolve(file, { configFile: undefined, cwd: "/w", sources: merged.sources }))
    assert.deepStrictEqual(
      c.databaseConfig.type === "postgres" && Redacted.value(c.databaseConfig.url),
      "postgres://db/t"
    )
    const both = Either.flip(Config.applyEnv({}, { TLSRPT_DATABASE_URL: "postgres://db/t", TLSRPT_DATABASE: "x.db" }))
    assert.strictEqual(
      Either.getOrThrow(both).message,
      "config: database: set only one of TLSRPT_DATABASE and TLSRPT_DATABASE_URL"
    )
    const transport = Either.flip(Config.applyEnv({}, { TLSRPT_TRANSPORT_URL: "smtp://a", TLSRPT_TRANSPORT_DIR: "d" }))
    assert.strictEqual(Either.getOrThrow(transport).key, "transport")
  })

  it("the round's defaults are the reporter's defaultConfig, temporary retries included", () => {
    const merged = Either.getOrThrow(Config.applyEnv({ reports: { maxGap: "1m" } }, {}))
    const file = Either.getOrThrow(Config.decode(merged.json))
    const r = Either.getOrThrow(Config.resolve(file, { configFile: undefined, cwd: "/w" })).reports
    assert.deepStrictEqual(r.window, defaultConfig.window)
    assert.deepStrictEqual(r.jitterMax, defaultConfig.jitterMax)
    assert.deepStrictEqual(r.temporaryRetries, defaultConfig.temporaryRetries)
    assert.strictEqual(Duration.toMillis(r.maxGap), 60_000)
  })
})
