import { gzipSync } from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import MimeNode from "nodemailer/lib/mime-node"
import { type RenderJob, renderFixed, renderReportMail, renderWithMimeNode } from "../src/ReportMailRender.js"

const HEADER_CASE: Readonly<Record<string, string>> = {
  "tls-report-domain": "TLS-Report-Domain",
  "tls-report-submitter": "TLS-Report-Submitter",
  "tls-required": "TLS-Required"
}

/** The message as the previous composer built it: the whole tree through `MimeNode.build()`. */
const built = (job: RenderJob): Promise<Buffer> => {
  const root = new MimeNode(false, {
    hostname: job.hostname,
    normalizeHeaderKey: (key) => HEADER_CASE[key.toLowerCase()] ?? key
  })
  root.contentType = "multipart/report"
  root.multipart = "report"
  root.boundary = job.boundary
  root.setHeader("From", { address: job.from })
  root.setHeader(
    "To",
    job.to.map((address) => ({ address }))
  )
  root.setHeader("Subject", job.subject)
  for (const [key, value] of job.reportHeaders) root.setHeader(key, value)
  root.setHeader("TLS-Required", "No")
  root.setHeader("Message-ID", job.messageId)
  root.setHeader("Date", new Date(job.date))
  root.setHeader("MIME-Version", "1.0")
  root.setHeader("Content-Type", {
    prepared: true,
    foldLines: true,
    value: `multipart/report; report-type="tlsrpt"; boundary="${job.boundary}"`
  })
  root.createChild("text/plain").setContent(job.text)
  root.createChild(job.mediaType, { filename: job.filename }).setContent(gzipOf(job))
  return root.build()
}

// The attachment bytes renderReportMail gzips; gzip output is deterministic for the same input.
const gzipOf = (job: RenderJob) => gzipSync(Buffer.from(job.reportJson, "utf8"))

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/)
const domain = fc.array(label, { minLength: 2, maxLength: 4 }).map((l) => l.join("."))
const local = fc.oneof(fc.stringMatching(/^[a-z0-9._+-]{1,20}$/), fc.constantFrom("tls-räports", "☺", "δοκιμή"))
const line = fc.oneof(
  fc.stringMatching(/^[ -~]{0,90}$/),
  fc.constantFrom("Policy Domain: ☺.example/xn--74h.example", "trailing space ", "tab\there")
)
const job: fc.Arbitrary<RenderJob> = fc.record({
  hostname: domain,
  from: domain.map((d) => `postmaster@${d}`),
  to: fc.array(
    fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`),
    { minLength: 1, maxLength: 12 }
  ),
  subject: fc
    .tuple(domain, domain)
    .map(([p, s]) => `Report Domain: ${p} Submitter: ${s} Report-ID: <20240109.${p}@${s}>`),
  reportHeaders: fc
    .tuple(domain, domain)
    .map(([p, s]) => [["TLS-Report-Domain", p] as const, ["TLS-Report-Submitter", s] as const]),
  messageId: fc.stringMatching(/^[A-Za-z0-9_-]{22}$/).map((id) => `<${id}@reports.example>`),
  date: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  boundary: fc.stringMatching(/^[0-9a-f]{24}$/).map((h) => `tlsrpt-${h}`),
  text: fc.array(line, { maxLength: 14 }).map((lines) => [...lines, ""].join("\r\n")),
  filename: fc.tuple(domain, domain).map(([s, p]) => `${s}!${p}!1704758400!1704844799.json.gz`),
  mediaType: fc.constant("application/tlsrpt+gzip"),
  reportJson: fc.json()
})

// The mails a round sends: ASCII text with short lines, plain addresses and attachment names.
const plainLine = fc.stringMatching(/^[ -~]{0,76}$/)
const plainJob: fc.Arbitrary<RenderJob> = fc
  .tuple(job, fc.array(plainLine, { maxLength: 14 }), fc.array(fc.stringMatching(/^[a-z0-9._+-]{1,20}$/)))
  .map(([j, lines, locals]) => ({
    ...j,
    to: j.to.map((a, i) => (locals[i] === undefined ? a : `${locals[i]}@${a.slice(a.lastIndexOf("@") + 1)}`)),
    text: [...lines, ""].join("\r\n")
  }))

describe("renderReportMail", () => {
  it.effect.prop(
    "writes the bytes MimeNode.build() writes, without its stream pipeline",
    { job },
    ({ job }) =>
      Effect.gen(function* () {
        const reference = yield* Effect.promise(() => built(job))
        assert.strictEqual(renderReportMail(job).toString("latin1"), reference.toString("latin1"))
      }),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect.prop(
    "the fixed-shape template covers a round's mails and writes MimeNode's bytes (issue 15)",
    { job: plainJob },
    ({ job }) =>
      Effect.gen(function* () {
        const fixed = renderFixed(job)
        assert.isDefined(fixed)
        assert.strictEqual(fixed, renderWithMimeNode(job))
        const reference = yield* Effect.promise(() => built(job))
        assert.strictEqual(renderReportMail(job).toString("latin1"), reference.toString("latin1"))
      }),
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "any job: the template gives MimeNode's text or leaves the job to MimeNode",
    { job },
    ({ job }) => {
      const fixed = renderFixed(job)
      if (fixed !== undefined) assert.strictEqual(fixed, renderWithMimeNode(job))
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("a text part MimeNode would encode, or an unusual attachment name, goes through MimeNode", () => {
    const [base] = fc.sample(plainJob, { seed: 1, numRuns: 1 })
    assert.isDefined(renderFixed(base!))
    assert.isUndefined(renderFixed({ ...base!, text: "Policy Domain: \u263a.example\r\n" }))
    assert.isUndefined(renderFixed({ ...base!, text: `${"x".repeat(77)}\r\n` }))
    assert.isUndefined(renderFixed({ ...base!, filename: "r\u00e9ports.example!a.example!1!2.json.gz" }))
    assert.isUndefined(renderFixed({ ...base!, filename: "a b.json.gz" }))
  })
})
