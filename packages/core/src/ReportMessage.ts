/**
 * Finds and decodes the TLS report in a raw RFC 5322 message (docs/design.md#report-parsing), and in bare `.json` /
 * `.json.gz` files (the CLI's `parse` command).
 *
 * The MIME tree comes from `@zone-eu/mailsplit` (mailparser's splitter): docs/design.md#report-parsing decides by the
 * parent multipart and its `report-type` parameter, which postal-mime's flattened attachment list
 * does not tell. Embedded `message/rfc822` parts stay leaves, as in mox.
 */
import { Buffer } from "node:buffer"
import type { Transform } from "node:stream"
import { createGunzip } from "node:zlib"
import { Splitter, type SplitterChunk } from "@zone-eu/mailsplit"
import { Data, Effect, Either } from "effect"
import libmime from "libmime"
import * as JsonDepth from "./JsonDepth.js"
import * as Report from "./Report.js"

/** docs/design.md#report-parsing: the message is read with a 15 MiB limit. */
export const MAX_MESSAGE_BYTES = 15 * 1024 * 1024
/** docs/design.md#conservative-json, docs/design.md#report-parsing: at most 20 MiB of (decompressed) JSON. */
export const MAX_JSON_BYTES = 20 * 1024 * 1024

export type ReportMessageErrorReason =
  | "too-large"
  | "no-report"
  | "wrong-report-type"
  | "gzip"
  | "json-too-large"
  | "invalid-json"
  | "invalid-report"
  | "mime"

export class ReportMessageError extends Data.TaggedError("ReportMessageError")<{
  readonly reason: ReportMessageErrorReason
  readonly detail: string
}> {
  override get message(): string {
    return `TLS report message: ${this.reason}: ${this.detail}`
  }
}

const fail = (reason: ReportMessageErrorReason, detail: string) =>
  Effect.fail(new ReportMessageError({ reason, detail }))

const GZIP = "application/tlsrpt+gzip"
const JSON_TYPE = "application/tlsrpt+json"

type MimeNode = Extract<SplitterChunk, { readonly type: "node" }>

/** What the first decisive MIME node (in document order) says. */
type Found =
  | { readonly _tag: "Part"; readonly node: MimeNode; readonly chunks: Array<Buffer> }
  | { readonly _tag: "WrongReportType"; readonly reportType: string | undefined }

const reportTypeOf = (node: MimeNode): string | undefined => {
  const header = node.headers === false ? "" : node.headers.getFirst("Content-Type")
  const value = libmime.parseHeaderValue(header, { stripComments: true }).params["report-type"]
  return typeof value === "string" ? value : undefined
}

/**
 * docs/design.md#report-parsing `parseMessageReport`: a leaf counts when it is the whole message or a direct child of a
 * `multipart/report`; a `multipart/report` whose report-type is not `tlsrpt` is a hard error. mox
 * recurses depth-first and stops at the first report or hard error: the splitter emits nodes in that
 * same pre-order, so the first decisive node wins. Only that node's body is kept.
 */
const findReportPart = (raw: Buffer): Effect.Effect<Found | undefined, ReportMessageError> =>
  Effect.async<Found | undefined, ReportMessageError>((resume) => {
    const splitter = new Splitter({ ignoreEmbedded: true })
    let found: Found | undefined
    let settled = false
    const settle = (effect: Effect.Effect<Found | undefined, ReportMessageError>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    splitter.on("data", (chunk: SplitterChunk) => {
      if (chunk.type === "node") {
        if (found !== undefined) return
        const node = chunk
        if (node.multipart !== false) {
          // Lower-cased like the media type: `TLSRPT` means tlsrpt (docs/design.md#lenient-decoding: lenient on input).
          const reportType = reportTypeOf(node)
          if (node.multipart === "report" && reportType?.trim().toLowerCase() !== "tlsrpt") {
            found = { _tag: "WrongReportType", reportType }
          }
          return
        }
        const parent = node.parentNode
        const allowed = parent === false || parent.multipart === "report"
        if (allowed && (node.contentType === GZIP || node.contentType === JSON_TYPE)) {
          found = { _tag: "Part", node, chunks: [] }
        }
      } else if (chunk.type === "body" && found?._tag === "Part" && chunk.node === found.node) {
        found.chunks.push(chunk.value)
      }
    })
    // The splitter's typings declare only its "data" event; it is a Transform like any other.
    const stream = splitter as unknown as Transform
    stream.on("error", (e: Error) => settle(fail("mime", e.message)))
    stream.on("end", () => settle(Effect.succeed(found)))
    splitter.end(raw)
    return Effect.sync(() => {
      settled = true
      splitter.destroy()
    })
  })

/** Undoes the part's Content-Transfer-Encoding (base64, quoted-printable, or none). */
const decodeTransfer = (node: MimeNode, chunks: ReadonlyArray<Buffer>): Effect.Effect<Buffer, ReportMessageError> =>
  Effect.async<Buffer, ReportMessageError>((resume) => {
    const decoder = node.getDecoder()
    const out: Array<Buffer> = []
    decoder.on("data", (b: Buffer) => out.push(b))
    decoder.on("error", (e: Error) => resume(fail("mime", `content-transfer-encoding: ${e.message}`)))
    decoder.on("end", () => resume(Effect.succeed(Buffer.concat(out))))
    for (const c of chunks) decoder.write(c)
    decoder.end()
    return Effect.sync(() => decoder.destroy())
  })

const isGzip = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b

/**
 * Inflates with a running byte count and stops the moment the output passes `MAX_JSON_BYTES`, so a
 * gzip bomb costs at most the limit, never its full size.
 */
const gunzip = (bytes: Uint8Array): Effect.Effect<Buffer, ReportMessageError> =>
  Effect.async<Buffer, ReportMessageError>((resume) => {
    const gz = createGunzip()
    const out: Array<Buffer> = []
    let size = 0
    let settled = false
    const settle = (effect: Effect.Effect<Buffer, ReportMessageError>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    gz.on("data", (b: Buffer) => {
      size += b.length
      if (size > MAX_JSON_BYTES) {
        gz.destroy()
        settle(fail("json-too-large", `more than ${MAX_JSON_BYTES} bytes after gunzip`))
      } else out.push(b)
    })
    gz.on("error", (e: Error) => settle(fail("gzip", e.message)))
    gz.on("end", () => settle(Effect.succeed(Buffer.concat(out, size))))
    gz.end(bytes)
    return Effect.sync(() => {
      settled = true
      gz.destroy()
    })
  })

const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d
const skipPreamble = (bytes: Uint8Array): number => {
  let i = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
  while (isSpace(bytes[i])) i++
  return i
}

/**
 * The end of the first JSON object or array in `text` (from `start`), or -1. docs/design.md#conservative-json, docs/design.md#report-parsing:
 * like Go's `json.Decoder`, data after the first value is ignored.
 */
const endOfFirstValue = (text: string, start: number): number => {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === "\\") i++
      else if (c === '"') inString = false
    } else if (c === '"') inString = true
    else if (c === "{" || c === "[") depth++
    else if (c === "}" || c === "]") {
      depth--
      if (depth === 0) return i + 1
      if (depth < 0) return -1
    }
  }
  return -1
}

const parseJsonText = (text: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(text))
  } catch (e) {
    const start = text.search(/\S/)
    const end = start === -1 ? -1 : endOfFirstValue(text, start)
    if (end !== -1 && end < text.length) {
      try {
        return Either.right(JSON.parse(text.slice(start, end)))
      } catch {
        // fall through to the first error
      }
    }
    return Either.left((e as Error).message)
  }
}

type Decode<R> = (value: unknown) => Either.Either<R, Report.ReportDecodeError>

const decodeJson =
  <R>(decode: Decode<R>) =>
  (bytes: Uint8Array): Effect.Effect<R, ReportMessageError> => {
    if (bytes.length > MAX_JSON_BYTES) return fail("json-too-large", `${bytes.length} bytes of JSON`)
    // Non-fatal decoding: invalid UTF-8 becomes U+FFFD, as Go's encoding/json does; a BOM is dropped.
    const text = new TextDecoder("utf-8").decode(bytes)
    if (JsonDepth.exceeds(text)) return fail("invalid-json", `nested deeper than ${JsonDepth.MAX_DEPTH} levels`)
    return Either.match(parseJsonText(text), {
      onLeft: (detail) => fail("invalid-json", detail),
      onRight: (value) =>
        Either.match(decode(value), {
          onLeft: (e) => fail("invalid-report", e.reason),
          onRight: Effect.succeed
        })
    })
  }

/** A `+gzip` body, or plain JSON in it, which receivers accept too (docs/design.md#conservative-json). */
const decodeGzipBody =
  <R>(decode: Decode<R>) =>
  (bytes: Uint8Array): Effect.Effect<R, ReportMessageError> => {
    if (isGzip(bytes)) return Effect.flatMap(gunzip(bytes), decodeJson(decode))
    const first = bytes[skipPreamble(bytes)]
    if (first === 0x7b || first === 0x5b) return decodeJson(decode)(bytes)
    return fail("gzip", "neither gzip data nor plain JSON")
  }

const toBuffer = (input: Uint8Array | string): Buffer =>
  typeof input === "string" ? Buffer.from(input, "utf8") : Buffer.from(input.buffer, input.byteOffset, input.byteLength)

const parseWith = <R>(decode: Decode<R>) =>
  Effect.fnUntraced(function* (message: Uint8Array | string) {
    // A string's UTF-8 form is at least as long as the string: no need to encode a huge one to refuse it.
    const size = typeof message === "string" ? message.length : message.byteLength
    if (size > MAX_MESSAGE_BYTES) return yield* fail("too-large", `message larger than ${MAX_MESSAGE_BYTES} bytes`)
    const raw = toBuffer(message)
    if (raw.length > MAX_MESSAGE_BYTES)
      return yield* fail("too-large", `message larger than ${MAX_MESSAGE_BYTES} bytes`)
    const found = yield* findReportPart(raw)
    if (found === undefined) return yield* fail("no-report", "no tlsrpt report found")
    if (found._tag === "WrongReportType") {
      return yield* fail(
        "wrong-report-type",
        `multipart/report with report-type ${JSON.stringify(found.reportType ?? null)}`
      )
    }
    const body = yield* decodeTransfer(found.node, found.chunks)
    return yield* found.node.contentType === GZIP ? decodeGzipBody(decode)(body) : decodeJson(decode)(body)
  })

const parseJsonOrGzipWith = <R>(decode: Decode<R>) =>
  Effect.fnUntraced(function* (bytes: Uint8Array | string) {
    if (typeof bytes === "string") {
      if (bytes.length > MAX_JSON_BYTES) return yield* fail("json-too-large", `${bytes.length} characters of JSON`)
      return yield* decodeJson(decode)(Buffer.from(bytes, "utf8"))
    }
    return yield* isGzip(bytes) ? Effect.flatMap(gunzip(bytes), decodeJson(decode)) : decodeJson(decode)(bytes)
  })

/**
 * docs/design.md#report-parsing `ParseMessage`: the report in a raw message, as a whole-message `application/tlsrpt+json`
 * or `+gzip` body or as a direct child of `multipart/report; report-type=tlsrpt`. Decoding is the
 * lenient `Report` schema, result types within the IANA list (the check on what we send).
 */
export const parse = (message: Uint8Array | string) =>
  parseWith(Report.fromJson)(message).pipe(Effect.withSpan("ReportMessage.parse"))

/**
 * A bare report file: gzip (by its magic bytes) or plain JSON, e.g. `….json.gz` or `….json`.
 * A string is taken as JSON text.
 */
export const parseJsonOrGzip = (bytes: Uint8Array | string) =>
  parseJsonOrGzipWith(Report.fromJson)(bytes).pipe(Effect.withSpan("ReportMessage.parseJsonOrGzip"))

/** `parse` for a report from anyone: result types outside the IANA list are kept (`ReceivedReport`). */
export const parseReceived = (message: Uint8Array | string) =>
  parseWith(Report.fromJsonReceived)(message).pipe(Effect.withSpan("ReportMessage.parseReceived"))

/** `parseJsonOrGzip` for a report from anyone (`ReceivedReport`). */
export const parseJsonOrGzipReceived = (bytes: Uint8Array | string) =>
  parseJsonOrGzipWith(Report.fromJsonReceived)(bytes).pipe(Effect.withSpan("ReportMessage.parseJsonOrGzipReceived"))
