/**
 * The documentation holds: every `docs/<file>.md#anchor` cited in code and README exists, nothing cites
 * documents outside the repository, the import rules of docs/architecture.md#packages-and-allowed-imports
 * hold, and no module import cycle exists. Each checker is first shown to fail on a broken example.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"
import {
  anchorsOf,
  brokenCitations,
  citationsIn,
  cyclesOf,
  importViolations,
  moduleGraph,
  outsideCitations,
  packageImportsOf,
  packageRules,
  read,
  slug,
  sourceFiles,
  tsFiles,
  workspacePackages
} from "./DocsCheck.js"

/**
 * Module cycles that exist today and are being removed (issue 12, point 2: the store ports). An entry
 * that is no longer a cycle fails the test, so the list only shrinks.
 */
const KNOWN_CYCLES: ReadonlyArray<ReadonlyArray<string>> = []

const docs = new Map(["design.md", "architecture.md"].map((name) => [name, read(`docs/${name}`)]))

/** Files whose citations are checked: code and tests, and the README (this folder's checkers quote the forms). */
const citingFiles = (): ReadonlyArray<string> => [
  ...["packages", "apps", "test", "examples"].flatMap(tsFiles).filter((p) => !p.startsWith("test/docs/")),
  "README.md"
]

describe("anchors (GitHub slug rules)", () => {
  it("slug: lower case, punctuation removed, spaces become dashes", () => {
    assert.strictEqual(slug("Row merge"), "row-merge")
    assert.strictEqual(slug("Distinct report-id for the MX-host report"), "distinct-report-id-for-the-mx-host-report")
    assert.strictEqual(
      slug("Conservative JSON instead of Go's zero values"),
      "conservative-json-instead-of-gos-zero-values"
    )
    assert.strictEqual(slug("`tlsrpt send` (one round)"), "tlsrpt-send-one-round")
    assert.strictEqual(slug("Phase-2 sent guard"), "phase-2-sent-guard")
  })

  it.prop("slug of a slug is itself, and holds no space", [FastCheck.string()], ([s]) => {
    const once = slug(s)
    assert.strictEqual(slug(once), once)
    assert.isFalse(once.includes(" "))
  })

  it("anchorsOf: headings outside code fences, repeats numbered", () => {
    const anchors = anchorsOf("# Top\n## Row merge\n```\n## not a heading\n```\n### Row merge\n")
    assert.deepStrictEqual([...anchors], ["top", "row-merge", "row-merge-1"])
  })

  it("brokenCitations finds a missing anchor and a missing document (a deliberately broken case)", () => {
    const text = "// docs/design.md#row-merge\n// docs/design.md#no-such-rule\n// docs/nowhere.md#x"
    const broken = brokenCitations(citationsIn("a.ts", text), new Map([["design.md", "## Row merge\n"]]))
    assert.deepStrictEqual(
      broken.map((c) => `${c.line}:${c.doc}#${c.anchor}`),
      ["2:design.md#no-such-rule", "3:nowhere.md#x"]
    )
  })

  it("outsideCitations finds every outside form (a deliberately broken case)", () => {
    const lines = [
      "// (spec §6.2)",
      "// DECISIONS.md §2",
      "// DECISIONS §3.4",
      "// mox's Q4",
      "see ../shared/ARCHITECTURE.md",
      "// RFC 8460 §4.3, docs/design.md#result-types"
    ]
    assert.deepStrictEqual(
      outsideCitations("a.ts", lines.join("\n")).map((c) => c.line),
      [1, 2, 3, 4, 5]
    )
  })

  it("every cited docs/<file>.md#anchor exists in the repository", () => {
    const citations = citingFiles().flatMap((f) => citationsIn(f, read(f)))
    assert.isAbove(citations.length, 100, "the code cites the design")
    const broken = brokenCitations(citations, docs)
    assert.deepStrictEqual(
      broken.map((c) => `${c.file}:${c.line}: docs/${c.doc}#${c.anchor}`),
      []
    )
  })

  it("no code, test or README cites a document outside the repository", () => {
    const outside = citingFiles().flatMap((f) => outsideCitations(f, read(f)))
    assert.deepStrictEqual(
      outside.map((c) => `${c.file}:${c.line}: ${c.text}`),
      []
    )
  })
})

describe("package import rules (docs/architecture.md#packages-and-allowed-imports)", () => {
  const rules = packageRules(read("docs/architecture.md"))

  it("the table is read: core imports nothing, reporter its four stages, the worker anything", () => {
    const byName = new Map(rules.map((r) => [r.name, r.mayImport]))
    assert.deepStrictEqual(byName.get("@tlsrpt/core"), [])
    assert.deepStrictEqual(byName.get("@tlsrpt/reporter"), [
      "@tlsrpt/core",
      "@tlsrpt/store",
      "@tlsrpt/dns",
      "@tlsrpt/mail"
    ])
    assert.deepStrictEqual(byName.get("@tlsrpt/outcome"), ["@tlsrpt/core", "@tlsrpt/collector"])
    assert.strictEqual(byName.get("@tlsrpt/worker"), "all")
    for (const { name } of workspacePackages()) assert.isTrue(byName.has(name), `${name} is in the table`)
  })

  it("importViolations finds a forbidden import (a deliberately broken case)", () => {
    const violations = importViolations(packageRules("| `@tlsrpt/store` | the store | core |\n"), [
      { rule: "@tlsrpt/store", pkg: "@tlsrpt/store", path: "ok.ts", text: `import { Day } from "@tlsrpt/core"` },
      { rule: "@tlsrpt/store", pkg: "@tlsrpt/store", path: "self.ts", text: `import type { X } from "@tlsrpt/store"` },
      { rule: "@tlsrpt/store", pkg: "@tlsrpt/store", path: "bad.ts", text: `import type { Dns } from "@tlsrpt/dns"` },
      { rule: "@tlsrpt/other", pkg: "@tlsrpt/other", path: "x.ts", text: "" }
    ])
    assert.deepStrictEqual(
      violations.map((v) => `${v.path} ${v.imports}`),
      ["bad.ts @tlsrpt/dns", "x.ts (package missing from docs/architecture.md)"]
    )
  })

  it("every package's src imports only what the table allows", () => {
    const files = sourceFiles(rules)
    assert.isAbove(files.length, 30)
    assert.deepStrictEqual(
      importViolations(rules, files).map((v) => `${v.path} (${v.rule}) imports ${v.imports}`),
      []
    )
  })
})

describe("module import cycles", () => {
  it("cyclesOf finds a cycle and only the cycle (a deliberately broken case)", () => {
    const files = new Map([
      ["p/src/A.ts", `import { b } from "./B.js"`],
      ["p/src/B.ts", `import type { a } from "./A.js"\nimport { c } from "./sub/index.js"`],
      ["p/src/sub/index.ts", `export * from "./C.js"`],
      ["p/src/sub/C.ts", `import { Effect } from "effect"`],
      ["p/src/Self.ts", `import { x } from "./Self.js"`]
    ])
    assert.deepStrictEqual(cyclesOf(moduleGraph(files)), [["p/src/A.ts", "p/src/B.ts"], ["p/src/Self.ts"]])
    files.set("p/src/B.ts", `import { c } from "./sub/index.js"`)
    assert.deepStrictEqual(cyclesOf(moduleGraph(files)), [["p/src/Self.ts"]])
  })

  it("no package has a module import cycle beyond the known ones, and every known one still exists", () => {
    const cycles = workspacePackages().flatMap(({ dir }) => {
      const src = dir === "test" ? dir : `${dir}/src`
      return cyclesOf(moduleGraph(new Map(tsFiles(src).map((p) => [p, read(p)]))))
    })
    const key = (c: ReadonlyArray<string>) => c.join(" ↔ ")
    const known = new Set(KNOWN_CYCLES.map(key))
    assert.deepStrictEqual(
      cycles.map(key).filter((c) => !known.has(c)),
      []
    )
    const present = new Set(cycles.map(key))
    assert.deepStrictEqual(
      [...known].filter((c) => !present.has(c)),
      [],
      "a known cycle is gone: remove it from KNOWN_CYCLES"
    )
  })

  it("no cycle between packages", () => {
    const rules = packageRules(read("docs/architecture.md"))
    const graph = new Map<string, Array<string>>()
    for (const f of sourceFiles(rules)) {
      const edges = graph.get(f.pkg) ?? []
      for (const p of packageImportsOf(f.text)) if (p !== f.pkg && !edges.includes(p)) edges.push(p)
      graph.set(f.pkg, edges)
    }
    assert.deepStrictEqual(cyclesOf(graph), [])
  })
})
