/**
 * Benchmark `compose` (issue 15): per report mail, in one process and interleaved (so machine load
 * hits all three alike): the bare RSA-2048 signature of the message (the floor), our in-thread
 * render + DkimSigner, and the previous path (MimeNode.build() + mailauth's dkimSign, which parses
 * the PEM per signature). Ends with one JSON line:
 *   {"bench":"compose","floorUs":N,"oursUs":N,"previousUs":N,"oursRatio":N,"previousRatio":N}
 */
import { createPrivateKey, sign } from "node:crypto"
import { gzipSync } from "node:zlib"
import { Effect } from "effect"
import { dkimSign } from "mailauth/lib/dkim/sign.js"
import MimeNode from "nodemailer/lib/mime-node"
import { generateDkimKeyPair } from "../src/DkimKeys.js"
import { makeDkimSigner } from "../src/DkimSigner.js"
import { OVERSIGNED_HEADERS, SIGNED_HEADERS } from "../src/ReportMail.js"
import { type RenderJob, renderAndSign } from "../src/ReportMailRender.js"

const N = Number(process.env.COMPOSE_N ?? 1000)
const { privateKeyPem } = await Effect.runPromise(generateDkimKeyPair("rsa-sha256"))
const key = createPrivateKey(privateKeyPem)
const signer = makeDkimSigner([{ domain: "reports.example", selector: "b", algorithm: "rsa-sha256", privateKeyPem }], {
  headers: SIGNED_HEADERS,
  oversign: OVERSIGNED_HEADERS
})

const job = (i: number): RenderJob => ({
  hostname: "reports.example",
  from: "postmaster@reports.example",
  to: [`tlsrpt@d${i}.example`],
  subject: `Report Domain: d${i}.example Submitter: reports.example Report-ID: <20240109.d${i}.example@reports.example>`,
  reportHeaders: [
    ["TLS-Report-Domain", `d${i}.example`],
    ["TLS-Report-Submitter", "reports.example"]
  ],
  messageId: `<m${i}@reports.example>`,
  date: Date.UTC(2024, 0, 10, 0, 5),
  boundary: `tlsrpt-${i.toString(16).padStart(24, "0")}`,
  text: "This is an aggregate SMTP TLS report (RFC 8460, TLSRPT).\r\n",
  filename: `reports.example!d${i}.example!1704758400!1704844799.json.gz`,
  mediaType: "application/tlsrpt+gzip",
  reportJson: JSON.stringify({
    "organization-name": "reports.example",
    "report-id": `20240109.d${i}.example@reports.example`,
    policies: Array.from({ length: 5 }, (_, p) => ({
      policy: { "policy-type": "tlsa", "policy-domain": `mx${p}.d${i}.example` },
      summary: { "total-successful-session-count": 1000 + p, "total-failure-session-count": 0 }
    }))
  })
})

/** The previous composer: the whole MimeNode tree through build(), then mailauth. */
const previous = async (j: RenderJob): Promise<Buffer> => {
  const root = new MimeNode(false, { hostname: j.hostname })
  root.contentType = "multipart/report"
  root.multipart = "report"
  root.boundary = j.boundary
  root.setHeader("From", { address: j.from })
  root.setHeader(
    "To",
    j.to.map((address) => ({ address }))
  )
  root.setHeader("Subject", j.subject)
  for (const [k, v] of j.reportHeaders) root.setHeader(k, v)
  root.setHeader("Message-ID", j.messageId)
  root.setHeader("Date", new Date(j.date))
  root.setHeader("Content-Type", { prepared: true, value: `multipart/report; boundary="${j.boundary}"` })
  root.createChild("text/plain").setContent(j.text)
  root.createChild(j.mediaType, { filename: j.filename }).setContent(gzipSync(Buffer.from(j.reportJson, "utf8")))
  const message = await root.build()
  const signed = await (dkimSign as unknown as (m: Buffer, o: object) => Promise<{ signatures: string }>)(message, {
    canonicalization: "relaxed/relaxed",
    headerList: SIGNED_HEADERS.join(":"),
    signTime: new Date(j.date),
    signatureData: [
      {
        signingDomain: "reports.example",
        selector: "b",
        privateKey: privateKeyPem,
        algorithm: "rsa-sha256",
        canonicalization: "relaxed/relaxed"
      }
    ]
  })
  return Buffer.concat([Buffer.from(signed.signatures), message])
}

let floor = 0
let ours = 0
let prev = 0
for (let i = 0; i < N; i++) {
  const j = job(i)
  const t0 = performance.now()
  const raw = renderAndSign(j, signer)
  const t1 = performance.now()
  sign("sha256", raw, key)
  const t2 = performance.now()
  await previous(j)
  const t3 = performance.now()
  ours += t1 - t0
  floor += t2 - t1
  prev += t3 - t2
}
const us = (ms: number) => Math.round((ms / N) * 1000)
console.log(
  `compose ${N} reports: bare RSA-2048 signature ${us(floor)} µs, ours (render + DkimSigner) ${us(ours)} µs = ${(ours / floor).toFixed(2)}× the floor, previous (MimeNode.build + mailauth) ${us(prev)} µs = ${(prev / floor).toFixed(2)}×`
)
console.log(
  JSON.stringify({
    bench: "compose",
    floorUs: us(floor),
    oursUs: us(ours),
    previousUs: us(prev),
    oursRatio: Math.round((ours / floor) * 100) / 100,
    previousRatio: Math.round((prev / floor) * 100) / 100
  })
)
