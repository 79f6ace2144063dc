import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as Day from "../src/Day.js"
import * as Domain from "../src/Domain.js"
import * as Report from "../src/Report.js"
import * as ReportNaming from "../src/ReportNaming.js"
import { seedReports } from "./fixtures.js"

const day = Either.getOrThrow(Day.parse("2024-01-09"))
const smiley = Domain.unsafeMake("☺.example")
const mailhost = Domain.unsafeMake("mailhost.☺.example")
const submitter = Domain.unsafeMake("mox.example")

describe("ReportNaming (docs/design.md#report-header, docs/design.md#message-composition; the seed's ☺.example case)", () => {
  it("report-id", () => {
    assert.strictEqual(ReportNaming.reportId(day, smiley, submitter), "20240109.xn--74h.example@mox.example")
    assert.strictEqual(ReportNaming.reportId(day, mailhost, submitter), "20240109.mailhost.xn--74h.example@mox.example")
    // the same ids as the seed's expected reports
    const [r1, r2] = [Report.fromJson(seedReports.report1), Report.fromJson(seedReports.report2)].map(Either.getOrThrow)
    assert.strictEqual(ReportNaming.reportId(day, smiley, submitter), r1!.reportId)
    assert.strictEqual(ReportNaming.reportId(day, mailhost, submitter), r2!.reportId)
  })

  it("date range: the whole UTC day, T00:00:00Z to T23:59:59Z", () => {
    const range = ReportNaming.dateRange(day)
    assert.deepStrictEqual(range, {
      startDatetime: new Date("2024-01-09T00:00:00Z"),
      endDatetime: new Date("2024-01-09T23:59:59Z")
    })
    assert.strictEqual(Report.formatDateTime(range.startDatetime), "2024-01-09T00:00:00Z")
    assert.strictEqual(Report.formatDateTime(range.endDatetime), "2024-01-09T23:59:59Z")
    assert.deepStrictEqual(range, Either.getOrThrow(Report.fromJson(seedReports.report1)).dateRange)
    // across a year end
    assert.strictEqual(
      Report.formatDateTime(ReportNaming.dateRange(Either.getOrThrow(Day.parse("2023-12-31"))).endDatetime),
      "2023-12-31T23:59:59Z"
    )
  })

  it("attachment filename", () => {
    assert.strictEqual(
      ReportNaming.filename(day, smiley, submitter),
      "mox.example!xn--74h.example!1704758400!1704844799.json.gz"
    )
  })

  it("subject, all domains as A-labels", () => {
    assert.strictEqual(
      ReportNaming.subject(smiley, submitter, ReportNaming.reportId(day, smiley, submitter)),
      "Report Domain: xn--74h.example Submitter: mox.example Report-ID: <20240109.xn--74h.example@mox.example>"
    )
    const idnSubmitter = Domain.unsafeMake("☺.example")
    assert.strictEqual(
      ReportNaming.subject(mailhost, idnSubmitter, "x@y"),
      "Report Domain: mailhost.xn--74h.example Submitter: xn--74h.example Report-ID: <x@y>"
    )
  })

  it("TLS-Report-Domain and TLS-Report-Submitter headers", () => {
    assert.deepStrictEqual(ReportNaming.headers(smiley, submitter), {
      "TLS-Report-Domain": "xn--74h.example",
      "TLS-Report-Submitter": "mox.example"
    })
  })

  it("period strings: the end is midnight itself", () => {
    assert.deepStrictEqual(ReportNaming.period(day), { begin: "2024-01-09 00:00:00", end: "2024-01-10 00:00:00" })
    assert.deepStrictEqual(ReportNaming.period(Either.getOrThrow(Day.parse("2024-02-29"))), {
      begin: "2024-02-29 00:00:00",
      end: "2024-03-01 00:00:00"
    })
  })

  it("media types", () => {
    assert.strictEqual(ReportNaming.MEDIA_TYPE_GZIP, "application/tlsrpt+gzip")
    assert.strictEqual(ReportNaming.MEDIA_TYPE_JSON, "application/tlsrpt+json")
  })
})
