/**
 * JSON lines input of the CLI (`import`, `record`): one JSON object a line, decoded with a Schema.
 * All or nothing: the first bad line stops the whole input, naming its line number, before anything
 * is stored (the issue's "atomic" rule). Blank lines are skipped.
 */
import { Day, Domain, JsonDepth, PolicyResult } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import { Data, Either, ParseResult, Schema } from "effect"
import { formatPath } from "./Config.js"

export class LineError extends Data.TaggedError("LineError")<{
  /** 1-based line number in the input. */
  readonly line: number
  readonly reason: string
}> {
  override get message(): string {
    return `line ${this.line}: ${this.reason}`
  }
}

const firstIssue = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return "invalid"
  const key = formatPath(issue.path)
  const message = issue._tag === "Unexpected" ? "unknown key" : issue._tag === "Missing" ? "is missing" : issue.message
  return `${key === "" ? "" : `${key}: `}${message.replace(/\s+/g, " ").slice(0, 300)}`
}

/**
 * The longest line read: a row with a few hundred failure details is well under 100 KB, so a longer
 * line is a mistake (a whole file without newlines) and is refused with its number instead of being
 * held and parsed.
 */
export const MAX_LINE_LENGTH = 1_048_576

/** Why a raw line cannot be parsed before JSON.parse sees it (length, nesting depth), if it cannot. */
export const checkLine = (line: string): string | undefined => {
  if (line.length > MAX_LINE_LENGTH) return `line longer than ${MAX_LINE_LENGTH} characters (${line.length})`
  if (JsonDepth.exceeds(line)) return `JSON nested deeper than ${JsonDepth.MAX_DEPTH} levels`
  return undefined
}

/** Decodes every non-blank line, or fails with the first bad one. */
export const decodeLines = <A, I>(
  schema: Schema.Schema<A, I>,
  text: string,
  options?: {
    readonly allowedKeys?: ReadonlyArray<string> | undefined
    /** A check of the decoded value; a string is the reason it is refused. */
    readonly check?: ((value: A) => string | undefined) | undefined
  }
): Either.Either<Array<A>, LineError> => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "ignore" })
  const out: Array<A> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === "") continue
    const fail = (reason: string) => Either.left(new LineError({ line: i + 1, reason }))
    const unreadable = checkLine(line)
    if (unreadable !== undefined) return fail(unreadable)
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (e) {
      return fail(`not JSON: ${(e as Error).message}`)
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) return fail("expected a JSON object")
    if (options?.allowedKeys !== undefined) {
      // Top-level typos are refused; inside the RFC 8460 objects decoding stays lenient (docs/design.md#lenient-decoding).
      const unknown = Object.keys(value).find((k) => !options.allowedKeys!.includes(k))
      if (unknown !== undefined) return fail(`${unknown}: unknown key`)
    }
    const decoded = decode(value)
    if (Either.isLeft(decoded)) return fail(firstIssue(decoded.left))
    const refused = options?.check?.(decoded.right)
    if (refused !== undefined) return fail(refused)
    out.push(decoded.right)
  }
  return Either.right(out)
}

/** One aggregate row of `tlsrpt import`, kebab-case keys as in RFC 8460. */
export const ImportRow = Schema.Struct({
  policyDomain: Schema.propertySignature(Domain.FromString).pipe(Schema.fromKey("policy-domain")),
  day: Day.Day,
  recipientDomain: Schema.propertySignature(Domain.FromString).pipe(Schema.fromKey("recipient-domain")),
  isHost: Schema.propertySignature(Schema.Boolean).pipe(Schema.fromKey("is-host")),
  sendReport: Schema.propertySignature(Schema.Boolean).pipe(Schema.fromKey("send-report")),
  results: Schema.Array(PolicyResult.PolicyResult)
})
export type ImportRow = typeof ImportRow.Type

export const IMPORT_KEYS: ReadonlyArray<string> = [
  "policy-domain",
  "day",
  "recipient-domain",
  "is-host",
  "send-report",
  "results"
]

/** A count above `PolicyResult.MAX_INPUT_COUNT` in a row, as `key: reason`, if any (sums must stay exact). */
export const checkCounts = (row: ImportRow): string | undefined => {
  const too = (key: string, n: number) =>
    n > PolicyResult.MAX_INPUT_COUNT
      ? `${key}: ${n} is above the maximum of ${PolicyResult.MAX_INPUT_COUNT}`
      : undefined
  for (const [i, r] of row.results.entries()) {
    const bad =
      too(`results[${i}].summary.total-successful-session-count`, r.summary.totalSuccessfulSessionCount) ??
      too(`results[${i}].summary.total-failure-session-count`, r.summary.totalFailureSessionCount) ??
      r.failureDetails
        .map((d, j) => too(`results[${i}].failure-details[${j}].failed-session-count`, d.failedSessionCount))
        .find((reason) => reason !== undefined)
    if (bad !== undefined) return bad
  }
  return undefined
}

/**
 * Why `day` is refused as too far in the future, if it is: a day after tomorrow (UTC) cannot have
 * sessions yet (tomorrow is allowed for clocks a little ahead), and such a row would wait unreported
 * for as long as its mistake lasts.
 */
export const futureDay = (day: Day.Day, nowMillis: number): string | undefined => {
  const latest = Day.addDays(Day.fromMillis(nowMillis), 1)
  return day > latest ? `day ${day} is in the future (latest accepted: ${latest})` : undefined
}

export const decodeImport = (text: string, nowMillis: number): Either.Either<Array<NewResultRow>, LineError> =>
  decodeLines(ImportRow, text, {
    allowedKeys: IMPORT_KEYS,
    check: (row) => checkCounts(row) ?? futureDay(row.day, nowMillis)
  })
