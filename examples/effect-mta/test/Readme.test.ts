/** The repository README's "Embedding in an Effect MTA" snippets are the example's code, verbatim. */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"

const region = (file: string, name: string): string => {
  const text = readFileSync(new URL(file, import.meta.url), "utf8")
  const m = new RegExp(`// #region ${name}\\n([\\s\\S]*?)// #endregion ${name}`).exec(text)
  assert.isNotNull(m, `${file}: region ${name}`)
  return m![1]!.trim()
}

const readmeBlocks = (): ReadonlyArray<string> => {
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8")
  const section = readme.split("## Embedding in an Effect MTA")[1]?.split("\n## ")[0] ?? ""
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!.trim())
}

describe("README embedding section", () => {
  it("shows src/Layers.ts and src/Mta.ts exactly", () => {
    assert.deepStrictEqual(readmeBlocks(), [region("../src/Layers.ts", "layers"), region("../src/Mta.ts", "embedding")])
  })
})
