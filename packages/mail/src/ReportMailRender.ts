/**
 * Renders one report mail from plain data, synchronously, and signs it: the part of composing that
 * runs in the compose pool's worker threads (ComposePool.ts) or in-thread. No Effect, no Clock, no
 * Random here: the caller decides Date, Message-ID and boundary, so both paths give the same bytes.
 *
 * The report mail has a fixed shape (RFC 8460 §5.3): headers, a text part, a gzip attachment.
 * nodemailer's `MimeNode` still writes every header (address and parameter encoding, RFC 2047 words,
 * folding: `buildHeaders()` is synchronous); the bodies are encoded with nodemailer's own `qp` and
 * `base64` functions. What is left out is `MimeNode.build()`, a stream pipeline per message that cost
 * as much as the RSA signature itself.
 */
import { gzipSync } from "node:zlib"
import type { Report } from "@tlsrpt/core"
// The subpath, not the index: a compose thread loads this module graph, and the index would bring
// effect's Schema and the rest of core with it (~0.4 s of CPU and ~9 MB of heap per thread, issue 15).
import * as ReportJson from "@tlsrpt/core/ReportJson"
import * as base64 from "nodemailer/lib/base64"
import * as mimeFuncs from "nodemailer/lib/mime-funcs"
import MimeNode from "nodemailer/lib/mime-node"
import * as qp from "nodemailer/lib/qp"
import type { DkimSigner } from "./DkimSigner.js"

export interface RenderJob {
  /** Message-ID right-hand side, for MimeNode. */
  readonly hostname: string
  readonly from: string
  readonly to: ReadonlyArray<string>
  readonly subject: string
  /** `TLS-Report-Domain`, `TLS-Report-Submitter`, in order. */
  readonly reportHeaders: ReadonlyArray<readonly [string, string]>
  readonly messageId: string
  /** Epoch ms: Date and DKIM `t=`. */
  readonly date: number
  readonly boundary: string
  readonly text: string
  readonly filename: string
  readonly mediaType: string
  /** The report as JSON text (RFC 8460 §4); gzipped here. */
  readonly reportJson: string
}

// Header names as RFC 8460 spells them; MimeNode would write `Tls-Report-Domain`.
const HEADER_CASE: Readonly<Record<string, string>> = {
  "tls-report-domain": "TLS-Report-Domain",
  "tls-report-submitter": "TLS-Report-Submitter",
  "tls-required": "TLS-Required"
}

const encodeBody = (node: MimeNode, content: Buffer): string => {
  switch (node.getTransferEncoding()) {
    case "base64":
      return base64.wrap(base64.encode(content), 76)
    case "quoted-printable":
      return qp.wrap(qp.encode(content), 76)
    default:
      return content.toString("utf8")
  }
}

/** The message through MimeNode's own `buildHeaders()`: any job, the reference of `renderFixed`. */
export const renderWithMimeNode = (job: RenderJob): string => {
  const date = new Date(job.date)
  // MimeNode writes `report-type=tlsrpt` unquoted when it builds Content-Type itself; RFC 8460
  // §5.3 spells it quoted, so the header is prepared here and the multipart fields set by hand.
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
  root.setHeader("Date", date)
  root.setHeader("MIME-Version", "1.0")
  root.setHeader("Content-Type", {
    prepared: true,
    foldLines: true,
    value: contentType(job.boundary)
  })
  const text = root.createChild("text/plain")
  text.setContent(job.text)
  const gzip = gzipJson(job.reportJson)
  const attachment = root.createChild(job.mediaType, { filename: job.filename })
  attachment.setContent(gzip)

  const b = job.boundary
  return (
    `${root.buildHeaders()}\r\n\r\n` +
    `--${b}\r\n${text.buildHeaders()}\r\n\r\n${encodeBody(text, Buffer.from(job.text, "utf8"))}` +
    `\r\n--${b}\r\n${attachment.buildHeaders()}\r\n\r\n${encodeBody(attachment, gzip)}` +
    `\r\n--${b}--\r\n`
  )
}

const contentType = (boundary: string) => `multipart/report; report-type="tlsrpt"; boundary="${boundary}"`

const gzipJson = (json: string): Buffer => gzipSync(Buffer.from(json, "utf8"))

/** nodemailer's header value encoding (addresses, RFC 2047 words, msg-ids, dates), from one node per thread. */
const encoder = new MimeNode(false, {}) as unknown as {
  readonly encodeHeaderValue: (key: string, value: unknown) => string
}

/** One header field as `buildHeaders()` writes an unprepared one: the value encoded, the line folded at 76. */
const field = (key: string, value: unknown): string =>
  mimeFuncs.foldLines(`${key}: ${encoder.encodeHeaderValue(key, value)}`, 76)

// The fields that are the same in every mail of a submitter (From, TLS-Report-Submitter, ...), and the
// part headers of a shape, rendered once; bounded, a thread sees one submitter or a few.
const memo = new Map<string, string>()
const memoized = (id: string, render: () => string): string => {
  const hit = memo.get(id)
  if (hit !== undefined) return hit
  if (memo.size >= 256) memo.clear()
  const value = render()
  memo.set(id, value)
  return value
}
const fixedField = (key: string, value: string) => memoized(`${key}\u0000${value}`, () => field(key, value))

/** A filename or media type MimeNode writes as it is, unquoted and unencoded, in a parameter or as a value. */
const PLAIN_FILENAME = /^[A-Za-z0-9._!+][A-Za-z0-9._!+-]*$/
const PLAIN_MEDIA_TYPE = /^application\/[a-z0-9.+-]{1,60}$/
const REPORT_HEADERS: ReadonlyArray<string> = ["tls-report-domain", "tls-report-submitter"]

/**
 * The report mail of the fixed shape, written from a template: the header fields in `buildHeaders()`'s
 * order, each value through nodemailer's own encoding and folding (`encodeHeaderValue`, `foldLines`,
 * `buildHeaderValue`), the part headers of a shape rendered once by MimeNode itself. It covers the mails
 * a round sends (ASCII text part with short lines, a plain attachment name); for anything else,
 * `undefined`, and the caller takes `renderWithMimeNode`. A property test holds the two equal: per
 * message, MimeNode's header objects, key normalisation and lookups cost about as much as the signature.
 */
export const renderFixed = (job: RenderJob): string | undefined => {
  const keys = job.reportHeaders.map(([k]) => k.toLowerCase())
  if (keys.length !== 2 || !REPORT_HEADERS.every((k, i) => keys[i] === k)) return undefined
  if (!PLAIN_FILENAME.test(job.filename) || !PLAIN_MEDIA_TYPE.test(job.mediaType)) return undefined
  if (!mimeFuncs.isPlainText(job.text) || mimeFuncs.hasLongerLines(job.text, 76)) return undefined
  const to = field(
    "To",
    job.to.map((address) => ({ address }))
  )
  const fields = [
    fixedField("From", job.from),
    to,
    field("Subject", job.subject),
    ...job.reportHeaders.map(([k, v]) => field(HEADER_CASE[k.toLowerCase()]!, v)),
    fixedField("TLS-Required", "No"),
    field("Message-ID", job.messageId),
    field("Date", new Date(job.date)),
    fixedField("MIME-Version", "1.0"),
    mimeFuncs.foldLines(`Content-Type: ${contentType(job.boundary)}`)
  ]
  // buildHeaders() leaves out a field whose encoded value is blank; such a job is not of the fixed shape
  if (fields.some((f) => f.slice(f.indexOf(":") + 1).trim() === "")) return undefined
  // an empty part has no Content-Transfer-Encoding field
  const textHeaders = memoized(job.text === "" ? "text/plain empty" : "text/plain 7bit", () => {
    // a child, as in the message: a root node would add Date, Message-ID and MIME-Version
    const node = new MimeNode("multipart/mixed").createChild("text/plain")
    node.setContent(job.text)
    return node.buildHeaders()
  })
  const attachmentHeaders = [
    mimeFuncs.foldLines(`Content-Type: ${job.mediaType}; name=${job.filename}`, 76),
    "Content-Transfer-Encoding: base64",
    mimeFuncs.foldLines(
      `Content-Disposition: ${mimeFuncs.buildHeaderValue({ value: "attachment", params: { filename: job.filename } })}`,
      76
    )
  ].join("\r\n")
  const b = job.boundary
  return (
    `${fields.join("\r\n")}\r\n\r\n` +
    `--${b}\r\n${textHeaders}\r\n\r\n${job.text}` +
    `\r\n--${b}\r\n${attachmentHeaders}\r\n\r\n${base64.wrap(base64.encode(gzipJson(job.reportJson)), 76)}` +
    `\r\n--${b}--\r\n`
  )
}

/** The unsigned message, CRLF line ends, as `MimeNode.build()` would write it. */
export const renderReportMail = (job: RenderJob): Buffer =>
  Buffer.from(renderFixed(job) ?? renderWithMimeNode(job), "utf8")

/** Renders and signs: the DKIM-Signature fields, then the message. */
export const renderAndSign = (job: RenderJob, signer: DkimSigner): Buffer => {
  const message = renderReportMail(job)
  return Buffer.concat([Buffer.from(signer.sign(message, new Date(job.date)), "latin1"), message])
}

/**
 * A job as the compose pool takes it: the report itself, not its JSON. Encoding the report costs more
 * than the rest of composing on the main thread, so the thread that gzips and signs does it too; the
 * report is plain data (strings, numbers, Dates) and crosses `postMessage` by structured clone.
 */
export interface ReportJob extends Omit<RenderJob, "reportJson"> {
  readonly report: Report.Report
}

/**
 * Encodes the report (RFC 8460 §4, the Schema's bytes without the Schema: ReportJson), renders and
 * signs; a report outside the schema throws `ReportJsonError`, in a pool thread as in-thread.
 */
export const renderReportAndSign = (job: ReportJob, signer: DkimSigner): Buffer => {
  const { report, ...rest } = job
  return renderAndSign({ ...rest, reportJson: ReportJson.encode(report) }, signer)
}
