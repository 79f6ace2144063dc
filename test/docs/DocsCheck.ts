/**
 * Checks that keep the code tied to its documentation (docs/architecture.md#development-workflow):
 * cited `docs/<file>.md#anchor`s exist, no citation points outside the repository, the package import
 * rules of docs/architecture.md hold, and no module import cycle exists. Pure functions over file
 * contents, so each is unit-tested on small in-memory examples; `RepoFiles` reads the real tree.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, posix } from "node:path"

// ---------------------------------------------------------------------------------------------------
// Anchors

/**
 * GitHub's heading anchor: lower case, punctuation removed (letters, digits, marks, `-`, `_` and
 * spaces stay), each space becomes `-`. Inline code ticks and emphasis markers are punctuation too.
 */
export const slug = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-")

/** The anchors of a Markdown document's headings and explicit `<a id>` anchors; a repeated heading gets `-1`, `-2`, … as on GitHub. */
export const anchorsOf = (markdown: string): ReadonlySet<string> => {
  const seen = new Map<string, number>()
  const anchors = new Set<string>()
  let fenced = false
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced
    if (fenced) continue
    // An explicit `<a id="…"></a>` anchor (GitHub keeps it) names a section whose heading may change.
    for (const a of line.matchAll(/<a id="([^"]+)"><\/a>/g)) anchors.add(a[1]!)
    const m = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line)
    if (!m) continue
    const base = slug(m[1]!)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    anchors.add(n === 0 ? base : `${base}-${n}`)
  }
  return anchors
}

export interface Citation {
  readonly file: string
  readonly line: number
  readonly doc: string
  readonly anchor: string
}

/** Every `docs/<file>.md#anchor` in a text. */
export const citationsIn = (file: string, text: string): ReadonlyArray<Citation> =>
  text.split("\n").flatMap((lineText, i) =>
    [...lineText.matchAll(/docs\/([\w-]+\.md)#([\w-]+)/g)].map((m) => ({
      file,
      line: i + 1,
      doc: m[1]!,
      anchor: m[2]!
    }))
  )

/** Citations whose document or anchor does not exist; `docs` maps a file name to its Markdown. */
export const brokenCitations = (
  citations: ReadonlyArray<Citation>,
  docs: ReadonlyMap<string, string>
): ReadonlyArray<Citation> => {
  const anchors = new Map([...docs].map(([name, md]) => [name, anchorsOf(md)]))
  return citations.filter((c) => !anchors.get(c.doc)?.has(c.anchor))
}

/**
 * Citations of documents that live outside the repository: the old spec (`spec §9.8`), its decision
 * list and quirk numbers (`DECISIONS.md §2`, `Q4`), the peer survey, and any `../shared/` path.
 */
const OUTSIDE = /\.\.\/shared|shared\/spec|\bspec §|DECISIONS|peers\.md|\bQ\d+\b/

export const outsideCitations = (
  file: string,
  text: string
): ReadonlyArray<{ readonly file: string; readonly line: number; readonly text: string }> =>
  text
    .split("\n")
    .flatMap((lineText, i) => (OUTSIDE.test(lineText) ? [{ file, line: i + 1, text: lineText.trim() }] : []))

// ---------------------------------------------------------------------------------------------------
// Package import rules

export interface PackageRule {
  /** `@tlsrpt/core`, or a subpath such as `@tlsrpt/testkit/simulation`. */
  readonly name: string
  /** Package names (`@tlsrpt/core`) it may import; `"all"` for any. */
  readonly mayImport: ReadonlyArray<string> | "all"
}

/** The "Packages and allowed imports" table of docs/architecture.md: rows `| \`@tlsrpt/x\` | … | core, store |`. */
export const packageRules = (architecture: string): ReadonlyArray<PackageRule> =>
  architecture.split("\n").flatMap((line): ReadonlyArray<PackageRule> => {
    const cells = line.split("|").map((c) => c.trim())
    const m = /^`(@tlsrpt\/[\w/-]+)`$/.exec(cells[1] ?? "")
    if (!m || cells.length < 5) return []
    const allowed = cells[3]!
    if (/^all\b/.test(allowed)) return [{ name: m[1]!, mayImport: "all" as const }]
    if (allowed === "nothing") return [{ name: m[1]!, mayImport: [] }]
    return [{ name: m[1]!, mayImport: allowed.split(",").map((s) => `@tlsrpt/${s.trim()}`) }]
  })

/** The `@tlsrpt/…` packages a source file imports (static, dynamic and re-exports; type-only too). */
export const packageImportsOf = (source: string): ReadonlyArray<string> =>
  [...source.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](@tlsrpt\/[\w-]+)(?:\/[\w/-]+)?["']/g)].map((m) => m[1]!)

export interface SourceFile {
  /** The rule the file falls under (its package, or a subpath row such as `@tlsrpt/testkit/simulation`). */
  readonly rule: string
  /** The package it belongs to, for self-imports. */
  readonly pkg: string
  readonly path: string
  readonly text: string
}

export interface ImportViolation {
  readonly path: string
  readonly rule: string
  readonly imports: string
}

/** Imports that the file's rule does not allow; a file whose rule is not in the table is a violation too. */
export const importViolations = (
  rules: ReadonlyArray<PackageRule>,
  files: ReadonlyArray<SourceFile>
): ReadonlyArray<ImportViolation> => {
  const byName = new Map(rules.map((r) => [r.name, r]))
  return files.flatMap((f) => {
    const rule = byName.get(f.rule)
    if (rule === undefined)
      return [{ path: f.path, rule: f.rule, imports: "(package missing from docs/architecture.md)" }]
    return packageImportsOf(f.text)
      .filter((p) => p !== f.pkg && rule.mayImport !== "all" && !rule.mayImport.includes(p))
      .map((p) => ({ path: f.path, rule: f.rule, imports: p }))
  })
}

// ---------------------------------------------------------------------------------------------------
// Module cycles

/** Relative imports of a module (`./X.js`, `../a/Y.js`), as specifiers. */
export const relativeImportsOf = (source: string): ReadonlyArray<string> =>
  [...source.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]!)

/**
 * The module graph of a set of files (POSIX paths): `./X.js` resolves to `X.ts`, `X.tsx`, `X/index.ts`
 * when that file is in the set; other imports are ignored.
 */
export const moduleGraph = (files: ReadonlyMap<string, string>): ReadonlyMap<string, ReadonlyArray<string>> => {
  const graph = new Map<string, ReadonlyArray<string>>()
  for (const [path, text] of files) {
    const targets = relativeImportsOf(text).flatMap((spec) => {
      const base = posix.normalize(posix.join(posix.dirname(path), spec)).replace(/\.(js|ts|mjs)$/, "")
      const found = [`${base}.ts`, `${base}.tsx`, `${base}/index.ts`].find((c) => files.has(c))
      return found === undefined ? [] : [found]
    })
    graph.set(path, [...new Set(targets)])
  }
  return graph
}

/** The cycles of a directed graph, one per strongly connected component with more than one node or a self-loop. */
export const cyclesOf = (graph: ReadonlyMap<string, ReadonlyArray<string>>): ReadonlyArray<ReadonlyArray<string>> => {
  // Tarjan's algorithm, iterative so that deep graphs cannot overflow the stack.
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: Array<string> = []
  const cycles: Array<ReadonlyArray<string>> = []
  for (const root of graph.keys()) {
    if (indices.has(root)) continue
    const work: Array<{ node: string; next: number }> = [{ node: root, next: 0 }]
    indices.set(root, index)
    low.set(root, index++)
    stack.push(root)
    onStack.add(root)
    while (work.length > 0) {
      const frame = work[work.length - 1]!
      const edges = graph.get(frame.node) ?? []
      if (frame.next < edges.length) {
        const to = edges[frame.next++]!
        if (!indices.has(to)) {
          indices.set(to, index)
          low.set(to, index++)
          stack.push(to)
          onStack.add(to)
          work.push({ node: to, next: 0 })
        } else if (onStack.has(to)) low.set(frame.node, Math.min(low.get(frame.node)!, indices.get(to)!))
        continue
      }
      work.pop()
      const parent = work[work.length - 1]
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!))
      if (low.get(frame.node) === indices.get(frame.node)) {
        const component: Array<string> = []
        let n: string
        do {
          n = stack.pop()!
          onStack.delete(n)
          component.push(n)
        } while (n !== frame.node)
        if (component.length > 1 || (graph.get(frame.node) ?? []).includes(frame.node)) cycles.push(component.sort())
      }
    }
  }
  return cycles
}

// ---------------------------------------------------------------------------------------------------
// The repository

export const ROOT = new URL("../../", import.meta.url).pathname

const SKIP = new Set(["node_modules", "dist", ".turbo", "coverage"])

/** `.ts` files under `dir` (relative to the repository root), POSIX paths relative to the root. */
export const tsFiles = (dir: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  const walk = (rel: string) => {
    let entries: ReadonlyArray<string>
    try {
      entries = readdirSync(join(ROOT, rel))
    } catch {
      return
    }
    for (const e of entries) {
      if (SKIP.has(e)) continue
      const p = posix.join(rel, e)
      if (statSync(join(ROOT, p)).isDirectory()) walk(p)
      else if (e.endsWith(".ts") && !e.endsWith(".d.ts")) out.push(p)
    }
  }
  walk(dir)
  return out.sort()
}

export const read = (rel: string): string => readFileSync(join(ROOT, rel), "utf8")

/** Workspace packages: name and directory (`packages/*`, `apps/*`, `test`). */
export const workspacePackages = (): ReadonlyArray<{ readonly name: string; readonly dir: string }> =>
  [
    ...["packages", "apps"].flatMap((top) => readdirSync(join(ROOT, top)).map((d) => posix.join(top, d))),
    "test"
  ].flatMap((dir) => {
    try {
      return [{ name: (JSON.parse(read(posix.join(dir, "package.json"))) as { name: string }).name, dir }]
    } catch {
      return []
    }
  })

/**
 * Each package's source files under the rule they fall under: a subpath row of the table
 * (`@tlsrpt/testkit/simulation`) covers `<package>/src/simulation/` (or `src/simulation.ts`).
 */
export const sourceFiles = (rules: ReadonlyArray<PackageRule>): ReadonlyArray<SourceFile> =>
  workspacePackages().flatMap(({ name, dir }) => {
    const subpaths = rules.filter((r) => r.name.startsWith(`${name}/`)).map((r) => r.name.slice(name.length + 1))
    const srcDir = dir === "test" ? dir : posix.join(dir, "src")
    return tsFiles(srcDir).map((path) => {
      const rel = path.slice(srcDir.length + 1).toLowerCase()
      const sub = subpaths.find((s) => rel.startsWith(`${s.toLowerCase()}/`) || rel === `${s.toLowerCase()}.ts`)
      return { rule: sub === undefined ? name : `${name}/${sub}`, pkg: name, path, text: read(path) }
    })
  })
