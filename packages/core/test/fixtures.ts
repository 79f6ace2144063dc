/** Shared test inputs: the seed's expected reports and raw report messages built with nodemailer. */
import { readFileSync } from "node:fs"
import { gzipSync } from "node:zlib"
import MimeNode from "nodemailer/lib/mime-node"

const seed = JSON.parse(readFileSync(new URL("../../testkit/fixtures/seed.json", import.meta.url), "utf8")) as {
  readonly reports: Readonly<Record<"report1" | "report2" | "report3", unknown>>
}

/** The seed's expected reports (in the form of docs/design.md#conservative-json), as JSON values in their file's key order. */
export const seedReports = seed.reports

export const seedReportJson = (name: "report1" | "report2" | "report3"): string => JSON.stringify(seed.reports[name])

export const gzip = (text: string | Uint8Array): Buffer => gzipSync(text)

export interface Part {
  readonly contentType: string
  readonly body: string | Buffer
  readonly filename?: string
}

const addHeaders = (node: MimeNode) =>
  node.setHeader({
    From: "<postmaster@mox.example>",
    To: "<tls-reports@xn--74h.example>",
    Subject: "Report Domain: xn--74h.example Submitter: mox.example Report-ID: <20240109.xn--74h.example@mox.example>",
    "TLS-Report-Domain": "xn--74h.example",
    "TLS-Report-Submitter": "mox.example"
  })

const fill = (node: MimeNode, part: Part) => {
  const child = node.createChild(part.contentType, { filename: part.filename, newline: "win" })
  child.setContent(part.body)
  return child
}

/** A message whose whole body is one part (RFC 8460 allows the report as the top-level body too). */
export const singlePart = (part: Part): Promise<Buffer> => {
  const root = new MimeNode(part.contentType, { newline: "win" })
  addHeaders(root)
  root.setContent(part.body)
  return root.build()
}

/**
 * A multipart message: `contentType` is the multipart's full Content-Type, parts are its direct
 * children (nested multiparts are given as `{ multipart, parts }`).
 */
export type Tree = Part | { readonly multipart: string; readonly parts: ReadonlyArray<Tree> }

const addTree = (node: MimeNode, tree: Tree): void => {
  if ("multipart" in tree) {
    const child = node.createChild(tree.multipart, { newline: "win" })
    for (const p of tree.parts) addTree(child, p)
  } else fill(node, tree)
}

export const multipart = (contentType: string, parts: ReadonlyArray<Tree>): Promise<Buffer> => {
  const root = new MimeNode(contentType, { newline: "win" })
  addHeaders(root)
  for (const p of parts) addTree(root, p)
  return root.build()
}

export const textPart: Part = {
  contentType: "text/plain; charset=utf-8",
  body: "This is a TLS report about connection successes and failures while delivering to ☺.example.\n"
}

/** The usual report mail (docs/design.md#message-composition): a text part, then the gzip attachment. */
export const reportMail = (json: string, reportType = "tlsrpt"): Promise<Buffer> =>
  multipart(`multipart/report; report-type="${reportType}"`, [
    textPart,
    {
      contentType: "application/tlsrpt+gzip",
      filename: "mox.example!xn--74h.example!1704758400!1704844799.json.gz",
      body: gzip(json)
    }
  ])
