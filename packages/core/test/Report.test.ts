import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc } from "effect"
import * as Report from "../src/Report.js"
import { seedReports } from "./fixtures.js"

const decoded = (value: unknown): Report.Report =>
  Either.getOrElse(Report.fromJson(value), (e) => assert.fail(e.message))

const minimal = (extra: object = {}, policy: object = {}, detail?: object) => ({
  "organization-name": "mox.example",
  "date-range": { "start-datetime": "2024-01-09T00:00:00Z", "end-datetime": "2024-01-09T23:59:59Z" },
  "contact-info": "postmaster@mox.example",
  "report-id": "20240109.xn--74h.example@mox.example",
  policies: [
    {
      policy: { "policy-type": "sts", "policy-domain": "xn--74h.example", ...policy },
      summary: { "total-successful-session-count": 1, "total-failure-session-count": 2 },
      ...(detail === undefined ? {} : { "failure-details": [detail] })
    }
  ],
  ...extra
})

describe("Report golden fixtures (seed report1..3)", () => {
  for (const name of ["report1", "report2", "report3"] as const) {
    it(`${name} decodes and encodes back to the same JSON, key order included`, () => {
      const json = seedReports[name]
      const report = decoded(json)
      assert.strictEqual(JSON.stringify(Report.toJson(report)), JSON.stringify(json))
      assert.strictEqual(Report.encodeJsonString(report), JSON.stringify(json))
      assert.deepStrictEqual(Report.decodeJsonString(JSON.stringify(json)), Either.right(report))
    })
  }

  it("report1 in the model", () => {
    const r = decoded(seedReports.report1)
    assert.strictEqual(r.organizationName, "mox.example")
    assert.deepStrictEqual(r.dateRange, {
      startDatetime: new Date("2024-01-09T00:00:00Z"),
      endDatetime: new Date("2024-01-09T23:59:59Z")
    })
    assert.strictEqual(r.policies.length, 2)
    assert.deepStrictEqual(r.policies[1]!.failureDetails[0], {
      resultType: "validation-failure",
      sendingMtaIp: "1.2.3.4",
      receivingMxHostname: "mailhost.xn--74h.example",
      receivingMxHelo: "mailhost.xn--74h.example",
      receivingIp: "4.3.2.1",
      failedSessionCount: 1,
      failureReasonCode: "dns-extended-error-7-signature-expired"
    })
  })
})

describe("Report lenient decoding (docs/design.md#lenient-decoding)", () => {
  it("mx-host as a string (the RFC example, errata 6241)", () => {
    const r = decoded(minimal({}, { "mx-host": "*.mail.company-y.example" }))
    assert.deepStrictEqual(r.policies[0]!.policy.mxHost, ["*.mail.company-y.example"])
    assert.deepStrictEqual(Report.toJson(r).policies?.[0]?.policy["mx-host"], ["*.mail.company-y.example"])
  })

  it("date-times without a zone are UTC; offsets, fractions and lower case are accepted", () => {
    const at = (start: string) =>
      decoded(minimal({ "date-range": { "start-datetime": start, "end-datetime": "2024-01-09T23:59:59Z" } })).dateRange
        .startDatetime
    assert.deepStrictEqual(at("2024-01-09T00:00:00"), new Date("2024-01-09T00:00:00Z"))
    assert.deepStrictEqual(at("2024-01-09T01:00:00+01:00"), new Date("2024-01-09T00:00:00Z"))
    assert.deepStrictEqual(at("2024-01-08T19:00:00-05:00"), new Date("2024-01-09T00:00:00Z"))
    assert.deepStrictEqual(at("2024-01-09t00:00:00.5z"), new Date("2024-01-09T00:00:00.500Z"))
    assert.deepStrictEqual(at("2024-01-09T00:00:00.123456789Z"), new Date("2024-01-09T00:00:00.123Z"))
    assert.deepStrictEqual(at("2024-01-09 00:00:00Z"), new Date("2024-01-09T00:00:00Z"))
  })

  it("impossible date-times are refused, not rolled over", () => {
    for (const s of [
      "2024-02-30T00:00:00Z",
      "2023-02-29T00:00:00Z",
      "2024-01-09T24:00:00Z",
      "2024-01-09T23:60:00Z",
      "2024-01-09T23:59:60Z",
      "2024-01-09T00:00:00+24:00",
      "2024-01-09",
      "1704758400",
      "not a date",
      "1969-12-31T23:59:59Z"
    ]) {
      const r = Report.fromJson(
        minimal({ "date-range": { "start-datetime": s, "end-datetime": "2024-01-09T23:59:59Z" } })
      )
      assert.isTrue(Either.isLeft(r), s)
    }
  })

  it("null optional fields decode as empty or absent", () => {
    const r = decoded(
      minimal(
        { "contact-info": null, "organization-name": null },
        { "policy-string": null, "mx-host": null },
        {
          "result-type": "starttls-not-supported",
          "sending-mta-ip": null,
          "receiving-mx-hostname": null,
          "receiving-mx-helo": null,
          "receiving-ip": null,
          "failed-session-count": null,
          "additional-information": null,
          "failure-reason-code": null
        }
      )
    )
    assert.strictEqual(r.contactInfo, "")
    assert.strictEqual(r.organizationName, "")
    assert.deepStrictEqual(r.policies[0]!.policy.policyString, [])
    assert.deepStrictEqual(r.policies[0]!.policy.mxHost, [])
    assert.deepStrictEqual(r.policies[0]!.failureDetails, [
      { resultType: "starttls-not-supported", failedSessionCount: 0 }
    ])
    const nulls = decoded({ ...minimal(), policies: null })
    assert.deepStrictEqual(nulls.policies, [])
    const missingDetails = decoded(minimal({}, {}, undefined))
    assert.deepStrictEqual(missingDetails.policies[0]!.failureDetails, [])
  })

  it("unknown keys are ignored at every level", () => {
    const r = decoded(
      minimal(
        { "x-extra": { a: 1 } },
        { "mx-host-pattern": "ignored" },
        {
          "result-type": "certificate-expired",
          "failed-session-count": 2,
          "additional-info-uri": "ignored"
        }
      )
    )
    assert.deepStrictEqual(
      r,
      decoded(minimal({}, {}, { "result-type": "certificate-expired", "failed-session-count": 2 }))
    )
  })

  it("what is not a report", () => {
    for (const v of [
      null,
      42,
      [],
      {},
      minimal({ "date-range": null }),
      minimal({}, { "policy-type": "other" }),
      minimal({}, { "policy-domain": 5 }),
      minimal({}, {}, { "result-type": "Other", "failed-session-count": 1 }),
      minimal({}, {}, { "result-type": "certificate-expired", "failed-session-count": -1 }),
      minimal({}, {}, { "result-type": "certificate-expired", "failed-session-count": 1.5 })
    ]) {
      const r = Report.fromJson(v)
      assert.isTrue(Either.isLeft(r), JSON.stringify(v))
      assert.strictEqual(
        Either.getLeft(r).pipe((o) => o._tag === "Some" && o.value._tag),
        "ReportDecodeError"
      )
    }
    const text = Report.decodeJsonString("{")
    assert.isTrue(Either.isLeft(text) && text.left.reason.startsWith("not JSON"))
  })
})

describe("Report conservative encoding (docs/design.md#conservative-json)", () => {
  it("arrays always present, absent optional failure-detail fields omitted, Z times", () => {
    const r = decoded(
      minimal(
        {
          "contact-info": null,
          "date-range": { "start-datetime": "2024-01-09T02:00:00+02:00", "end-datetime": "2024-01-09T23:59:59" }
        },
        { "policy-string": null },
        { "result-type": "sts-policy-fetch-error", "failure-reason-code": null, "failed-session-count": 1 }
      )
    )
    const json = JSON.parse(Report.encodeJsonString(r))
    assert.deepStrictEqual(json, {
      "organization-name": "mox.example",
      "date-range": { "start-datetime": "2024-01-09T00:00:00Z", "end-datetime": "2024-01-09T23:59:59Z" },
      "contact-info": "",
      "report-id": "20240109.xn--74h.example@mox.example",
      policies: [
        {
          policy: { "policy-type": "sts", "policy-string": [], "policy-domain": "xn--74h.example", "mx-host": [] },
          summary: { "total-successful-session-count": 1, "total-failure-session-count": 2 },
          "failure-details": [{ "result-type": "sts-policy-fetch-error", "failed-session-count": 1 }]
        }
      ]
    })
    const noDetails = JSON.parse(Report.encodeJsonString(decoded(minimal())))
    assert.deepStrictEqual(noDetails.policies[0]["failure-details"], [])
  })

  it("milliseconds appear only when present", () => {
    assert.strictEqual(Report.formatDateTime(new Date("2024-01-09T00:00:00Z")), "2024-01-09T00:00:00Z")
    assert.strictEqual(Report.formatDateTime(new Date("2024-01-09T00:00:00.250Z")), "2024-01-09T00:00:00.250Z")
  })

  it.prop(
    "decode(encode(r)) equals r, through JSON text",
    [Arbitrary.make(Report.Report)],
    ([r]) => {
      const text = Report.encodeJsonString(r)
      assert.deepStrictEqual(Report.decodeJsonString(text), Either.right(r))
      assert.deepStrictEqual(Report.fromJson(Report.toJson(r)), Either.right(r))
      // every encoded report has the conservative shape
      const json = JSON.parse(text)
      for (const p of json.policies) {
        assert.isArray(p.policy["policy-string"])
        assert.isArray(p.policy["mx-host"])
        assert.isArray(p["failure-details"])
        for (const d of p["failure-details"]) for (const v of Object.values(d)) assert.isNotNull(v)
      }
      assert.match(json["date-range"]["start-datetime"], /Z$/)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("the schema arbitrary stays in the encodable date range (1970..9999)", () => {
    const dates = fc.sample(Arbitrary.make(Report.DateRange), 200).map((d) => d.startDatetime.getTime())
    assert.isTrue(dates.every((t) => t >= 0 && t <= Date.UTC(9999, 11, 31, 23, 59, 59, 999)))
  })
})

describe("received reports (docs/design.md#received-result-types)", () => {
  const field = {
    "organization-name": "Stalwart",
    "date-range": { "start-datetime": "2024-01-09T00:00:00Z", "end-datetime": "2024-01-09T23:59:59Z" },
    "contact-info": "postmaster@stalwart.example",
    "report-id": "r1",
    policies: [
      {
        policy: { "policy-type": "no-policy-found", "policy-domain": "x.example" },
        summary: { "total-successful-session-count": 1, "total-failure-session-count": 2 },
        "failure-details": [
          { "result-type": "Other", "failed-session-count": 1 },
          { "result-type": "certificate-expired", "failed-session-count": 1 }
        ]
      }
    ]
  }

  it("a result type outside the IANA list is kept as written when received", () => {
    const r = Either.getOrThrow(Report.fromJsonReceived(field))
    assert.deepStrictEqual(
      r.policies[0]!.failureDetails.map((d) => d.resultType),
      ["Other", "certificate-expired"]
    )
    assert.deepStrictEqual(Report.receivedToJson(r).policies?.[0]?.["failure-details"]?.[0], {
      "result-type": "Other",
      "failed-session-count": 1
    })
  })

  it("what we send stays within the IANA list: the sending schema refuses it", () => {
    assert.isTrue(Either.isLeft(Report.fromJson(field)))
  })
})
