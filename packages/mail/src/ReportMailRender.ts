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
import { Report } from "@tlsrpt/core"
import * as base64 from "nodemailer/lib/base64"
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

/** The unsigned message, CRLF line ends, as `MimeNode.build()` would write it. */
export const renderReportMail = (job: RenderJob): Buffer => {
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
    value: `multipart/report; report-type="tlsrpt"; boundary="${job.boundary}"`
  })
  const text = root.createChild("text/plain")
  text.setContent(job.text)
  const gzip = gzipSync(Buffer.from(job.reportJson, "utf8"))
  const attachment = root.createChild(job.mediaType, { filename: job.filename })
  attachment.setContent(gzip)

  const b = job.boundary
  return Buffer.from(
    `${root.buildHeaders()}\r\n\r\n` +
      `--${b}\r\n${text.buildHeaders()}\r\n\r\n${encodeBody(text, Buffer.from(job.text, "utf8"))}` +
      `\r\n--${b}\r\n${attachment.buildHeaders()}\r\n\r\n${encodeBody(attachment, gzip)}` +
      `\r\n--${b}--\r\n`,
    "utf8"
  )
}

/** Renders and signs: the DKIM-Signature fields, then the message. */
export const renderAndSign = (job: RenderJob, signer: DkimSigner): Buffer => {
  const message = renderReportMail(job)
  return Buffer.concat([Buffer.from(signer.sign(message, new Date(job.date)), "latin1"), message])
}

/**
 * A job as the compose pool takes it: the report itself, not its JSON. Encoding the report (a Schema
 * encode, then JSON.stringify) costs more than the rest of composing on the main thread, so the thread
 * that gzips and signs does it too; the report is plain data (strings, numbers, Dates) and crosses
 * `postMessage` by structured clone.
 */
export interface ReportJob extends Omit<RenderJob, "reportJson"> {
  readonly report: Report.Report
}

/** Encodes the report (RFC 8460 §4), renders and signs. */
export const renderReportAndSign = (job: ReportJob, signer: DkimSigner): Buffer => {
  const { report, ...rest } = job
  return renderAndSign({ ...rest, reportJson: Report.encodeJsonString(report) }, signer)
}
