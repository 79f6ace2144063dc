/**
 * The RFC 8460 §4 report. `Report` is the wire format as a Schema: decoding is lenient (mx-host
 * string or array, date-times without a zone, nulls, unknown keys), encoding is conservative
 * (docs/design.md#conservative-json: arrays always, optional fields omitted, RFC 3339 with `Z`, keys in RFC order).
 */
import { Data, Either, ParseResult, Schema } from "effect"
import * as Day from "./Day.js"
import * as PolicyResult from "./PolicyResult.js"
import { formatDateTime, MAX_DATE, toJson as toJsonByHand } from "./ReportJson.js"

export { formatDateTime } from "./ReportJson.js"

// RFC 3339 date-time; the zone may be missing (Microsoft's reports, docs/design.md#lenient-decoding) and then means UTC.
const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))?$/

const parseDateTime = (s: string): Date | undefined => {
  const m = RFC3339.exec(s.trim())
  if (m === null) return undefined
  const [, day, hh, mm, ss, fraction, zone, zh, zm] = m
  // RFC 3339 §5.7 ranges, as Go's time.Parse checks them: `Date` would roll `02-30` or `24:00` over.
  if (Either.isLeft(Day.parse(day!)) || Number(hh) > 23 || Number(mm) > 59 || Number(ss) > 59) return undefined
  if (zh !== undefined && (Number(zh) > 23 || Number(zm) > 59)) return undefined
  const frac = fraction === undefined ? "" : fraction.slice(0, 4).padEnd(4, "0")
  const tz = zone === undefined || zone === "z" ? "Z" : zone
  const d = new Date(`${day}T${hh}:${mm}:${ss}${frac}${tz}`)
  return Number.isNaN(d.getTime()) ? undefined : d
}

const DateValue = Schema.ValidDateFromSelf.pipe(
  Schema.filter((d) => d.getTime() >= 0 && d.getTime() <= MAX_DATE, { message: () => "date out of range" })
).annotations({
  arbitrary: () => (fc) => fc.date({ min: new Date(0), max: new Date(MAX_DATE), noInvalidDate: true })
})

export const DateTime = Schema.transformOrFail(Schema.String, DateValue, {
  strict: true,
  decode: (s, _, ast) => {
    const d = parseDateTime(s)
    return d === undefined
      ? ParseResult.fail(new ParseResult.Type(ast, s, `not an RFC 3339 date-time: ${s}`))
      : ParseResult.succeed(d)
  },
  encode: (d) => ParseResult.succeed(formatDateTime(d))
})

export const DateRange = Schema.Struct({
  startDatetime: Schema.propertySignature(DateTime).pipe(Schema.fromKey("start-datetime")),
  endDatetime: Schema.propertySignature(DateTime).pipe(Schema.fromKey("end-datetime"))
})
export type DateRange = typeof DateRange.Type

const text = (key: string) =>
  Schema.optionalWith(Schema.String, { nullable: true, default: () => "" }).pipe(Schema.fromKey(key))

const report = <A, I>(policyResult: Schema.Schema<A, I>) =>
  Schema.Struct({
    organizationName: text("organization-name"),
    dateRange: Schema.propertySignature(DateRange).pipe(Schema.fromKey("date-range")),
    contactInfo: text("contact-info"),
    reportId: text("report-id"),
    policies: Schema.optionalWith(Schema.Array(policyResult), { nullable: true, default: () => [] })
  })

/** A report as we send it: result types within the IANA list. */
export const Report = report(PolicyResult.PolicyResult)
export type Report = typeof Report.Type

/**
 * A report as received from anyone: result types outside the IANA list are kept as written
 * (docs/design.md#received-result-types). Every `Report` is a `ReceivedReport`.
 */
export const ReceivedReport = report(PolicyResult.ReceivedPolicyResult)
export type ReceivedReport = typeof ReceivedReport.Type
/** The JSON shape on the wire. */
export type ReportJson = typeof Report.Encoded

export class ReportDecodeError extends Data.TaggedError("ReportDecodeError")<{
  readonly reason: string
}> {
  override get message(): string {
    return `invalid TLS report: ${this.reason}`
  }
}

/** The conservative JSON object for a report. */
export const toJson = (report: Report): ReportJson => Schema.encodeSync(Report)(report)

/**
 * Compact JSON text of a report, as put in the gzip attachment or the https body: ReportJson's
 * hand-written encoding (the Schema encode walks the AST per value and was the largest cost of
 * composing a report mail after the RSA signature, issue 15); a report it refuses takes the Schema
 * encode, so it fails with the Schema's parse error.
 */
export const encodeJsonString = (report: Report): string => JSON.stringify(toJsonByHand(report) ?? toJson(report))

const decodeUnknown = Schema.decodeUnknownEither(Report, { errors: "first", onExcessProperty: "ignore" })

/** Lenient decoding of an already-parsed JSON value. */
export const fromJson = (value: unknown): Either.Either<Report, ReportDecodeError> =>
  Either.mapLeft(
    decodeUnknown(value),
    (e) => new ReportDecodeError({ reason: ParseResult.TreeFormatter.formatErrorSync(e) })
  )

/** Lenient decoding of JSON text. */
export const decodeJsonString = (json: string): Either.Either<Report, ReportDecodeError> => {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (e) {
    return Either.left(new ReportDecodeError({ reason: `not JSON: ${(e as Error).message}` }))
  }
  return fromJson(value)
}

const decodeReceived = Schema.decodeUnknownEither(ReceivedReport, { errors: "first", onExcessProperty: "ignore" })

/** Lenient decoding of a received report, any result type kept (docs/design.md#received-result-types). */
export const fromJsonReceived = (value: unknown): Either.Either<ReceivedReport, ReportDecodeError> =>
  Either.mapLeft(
    decodeReceived(value),
    (e) => new ReportDecodeError({ reason: ParseResult.TreeFormatter.formatErrorSync(e) })
  )

/** The JSON object of a received report, as `toJson` writes ours. */
export const receivedToJson = (report: ReceivedReport): typeof ReceivedReport.Encoded =>
  Schema.encodeSync(ReceivedReport)(report)
