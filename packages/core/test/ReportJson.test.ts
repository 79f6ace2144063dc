import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as Report from "../src/Report.js"
import * as ReportJson from "../src/ReportJson.js"
import { seedReports } from "./fixtures.js"

/** The reference: the Schema encode, then compact JSON; `undefined` where the encode refuses the report. */
const schemaBytes = (r: unknown): Buffer | undefined => {
  const encoded = Schema.encodeEither(Report.Report)(r as Report.Report)
  return Either.isRight(encoded) ? Buffer.from(JSON.stringify(encoded.right), "utf8") : undefined
}
const handBytes = (r: unknown): Buffer | undefined => {
  const json = ReportJson.toJson(r)
  return json === undefined ? undefined : Buffer.from(JSON.stringify(json), "utf8")
}

const decoded = (value: unknown): Report.Report =>
  Either.getOrElse(Report.fromJson(value), (e) => assert.fail(e.message))

type Path = ReadonlyArray<string | number>

// Every value of a report by its path (containers too), and the optional keys a failure detail lacks.
const OPTIONAL_DETAILS = [
  "sendingMtaIp",
  "receivingMxHostname",
  "receivingMxHelo",
  "receivingIp",
  "additionalInformation",
  "failureReasonCode"
]
const paths = (v: unknown, at: Path = []): Array<Path> => {
  if (typeof v !== "object" || v === null || v instanceof Date) return [at]
  const out: Array<Path> = [at]
  if (Array.isArray(v)) for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]))
  else {
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]))
    if ("resultType" in v) for (const k of OPTIONAL_DETAILS) if (!(k in v)) out.push([...at, k])
  }
  return out
}

const DELETE = Symbol("delete")
/** `r` with the value at `path` replaced (or its key deleted: a hole in an array). */
const replaced = (r: Report.Report, path: Path, value: unknown): unknown => {
  if (path.length === 0) return value === DELETE ? undefined : value
  const copy = structuredClone(r) as unknown as Record<string | number, unknown>
  let parent = copy
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>
  const last = path[path.length - 1]!
  if (value === DELETE) delete parent[last]
  else parent[last] = value
  return copy
}

const anyValue = fc.oneof(
  fc.anything(),
  fc.constant(DELETE),
  fc.constant(undefined),
  fc.constant(null),
  fc.string(),
  fc.constantFrom(...ReportJson.POLICY_TYPES, ...ReportJson.RESULT_TYPES, "Other"),
  fc.integer(),
  fc.double(),
  fc.constantFrom(-0, -1, 1.5, ReportJson.MAX_COUNT, ReportJson.MAX_COUNT + 1, 2 ** 60, Number.NaN),
  fc.date({ noInvalidDate: false }),
  fc.constantFrom(new Date(-1), new Date(ReportJson.MAX_DATE), new Date(ReportJson.MAX_DATE + 1)),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxLength: 3 }),
  fc.sparseArray(fc.string(), { maxLength: 3 }),
  fc.constant([])
)

describe("ReportJson: the report's JSON without Schema (issue 15)", () => {
  it.prop(
    "byte-identical to the Schema encode for every report",
    [Arbitrary.make(Report.Report)],
    ([r]) => {
      const expected = schemaBytes(r)
      assert.isDefined(expected)
      assert.isTrue(Buffer.from(ReportJson.encode(r), "utf8").equals(expected!))
      assert.isTrue(Buffer.from(Report.encodeJsonString(r), "utf8").equals(expected!))
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop(
    "with any one value replaced: refused exactly where the Schema encode refuses, else the same bytes",
    [Arbitrary.make(Report.Report), fc.nat(), anyValue],
    ([r, pick, value]) => {
      const all = paths(r)
      const mutated = replaced(r, all[pick % all.length]!, value)
      const expected = schemaBytes(mutated)
      const actual = handBytes(mutated)
      if (expected === undefined) {
        assert.isUndefined(actual)
        assert.throws(() => ReportJson.encode(mutated), ReportJson.ReportJsonError)
      } else assert.isTrue(actual?.equals(expected), `${actual} != ${expected}`)
    },
    { fastCheck: { numRuns: 2000 } }
  )

  for (const name of ["report1", "report2", "report3"] as const) {
    it(`${name} (seed) encodes to its own JSON, key order included`, () => {
      const json = seedReports[name]
      assert.strictEqual(ReportJson.encode(decoded(json)), JSON.stringify(json))
    })
  }

  it("a report outside the schema: the error names the value; encodeJsonString fails as the Schema does", () => {
    const r = decoded(seedReports.report1)
    const negative = {
      ...r,
      policies: r.policies.map((p) => ({ ...p, summary: { ...p.summary, totalFailureSessionCount: -1 } }))
    }
    const e = (() => {
      try {
        ReportJson.encode(negative)
      } catch (e) {
        return e
      }
    })()
    assert.instanceOf(e, ReportJson.ReportJsonError)
    assert.strictEqual(e.path, "policies[0].summary.totalFailureSessionCount")
    assert.isUndefined(ReportJson.toJson(negative))
    assert.throws(() => Report.encodeJsonString(negative), /ParseError|Expected|integer/)
    const invalidDate = { ...r, dateRange: { ...r.dateRange, endDatetime: new Date(Number.NaN) } }
    assert.throws(() => ReportJson.encode(invalidDate), /dateRange\.endDatetime/)
  })

  it("imports nothing: a compose thread loads it alone", () => {
    const source = readFileSync(new URL("../src/ReportJson.ts", import.meta.url), "utf8")
    assert.notMatch(source, /^(import|export .* from)\b/m)
  })
})
