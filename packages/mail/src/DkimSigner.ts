/**
 * DKIM signing on `node:crypto` (RFC 6376 with RSA-SHA256, RFC 8463 with Ed25519-SHA256),
 * relaxed/relaxed, no `l=`. Ours rather than mailauth's `dkimSign` (README "Why signing is ours"):
 * the keys are parsed into `KeyObject`s once instead of on every signature, the message is hashed
 * from one buffer instead of streamed through a parser, and header fields can be oversigned
 * (RFC 6376 §8.15: an `h=` entry beyond the fields present makes adding such a field break the
 * signature), as mox signs, which mailauth cannot. Verification stays mailauth's (and dkimpy's in
 * the tests): signing and checking are not the same code.
 */
import { createHash, createPrivateKey, type KeyObject, sign } from "node:crypto"
import type { DkimAlgorithm } from "./DkimKeys.js"

export interface DkimSignerKey {
  /** The signing domain, A-label (`d=`). */
  readonly domain: string
  readonly selector: string
  readonly algorithm: DkimAlgorithm
  readonly privateKeyPem: string
}

export interface DkimSignerOptions {
  /** Header fields to sign, each as often as it occurs in the message (RFC 6376 §5.4.2). */
  readonly headers: ReadonlyArray<string>
  /** Of those, the ones signed once more than they occur, so none can be added (RFC 6376 §8.15). */
  readonly oversign: ReadonlyArray<string>
}

export interface DkimSigner {
  /**
   * The `DKIM-Signature` header fields for `message` (CRLF line ends), one per key in key order,
   * each ending in CRLF, to be put in front of the message. Throws only on a crypto failure.
   */
  readonly sign: (message: Uint8Array, time: Date) => string
}

const CRLF = "\r\n"
const MAX_LINE = 76

/**
 * RFC 6376 §3.4.4: relaxed body canonicalization. An unterminated last line loses its trailing white
 * space like any other: on the wire it ends in CRLF (docs/design.md#body-without-final-crlf).
 */
export const canonicalBodyRelaxed = (body: string): string => {
  const s = body
    .replace(/[ \t]+/g, " ")
    .replace(/ (?=\r\n|$)/g, "")
    .replace(/(?:\r\n)+$/, "")
  return s.length === 0 ? "" : s + CRLF
}

/** RFC 6376 §3.4.2: relaxed header canonicalization of one field (`Name: value`, maybe folded). */
export const canonicalHeaderRelaxed = (field: string): string => {
  const colon = field.indexOf(":")
  const name = field.slice(0, colon).trimEnd().toLowerCase()
  const value = field
    .slice(colon + 1)
    .replace(/\r\n/g, "")
    .replace(/[ \t]+/g, " ")
    .trim()
  return `${name}:${value}`
}

/** Splits a message into its header fields (folded lines kept) and its body. */
const split = (message: string): { readonly fields: ReadonlyArray<string>; readonly body: string } => {
  const end = message.indexOf("\r\n\r\n")
  const head = end < 0 ? message : message.slice(0, end)
  const body = end < 0 ? "" : message.slice(end + 4)
  return { fields: head.split(/\r\n(?![ \t])/).filter((f) => f.length > 0), body }
}

/** `a:b:c` folded before a name when the line would pass 76 characters. */
const foldList = (names: ReadonlyArray<string>, start: number): string => {
  let out = ""
  let col = start
  for (const [i, name] of names.entries()) {
    const piece = i === 0 ? name : `:${name}`
    if (i > 0 && col + piece.length > MAX_LINE) {
      out += `:${CRLF} ${name}`
      col = 1 + name.length
    } else {
      out += piece
      col += piece.length
    }
  }
  return out
}

/** base64 folded into lines of at most 76 characters after the `b=` at column `start`. */
const foldBase64 = (value: string, start: number): string => {
  const first = Math.max(0, MAX_LINE - start)
  const parts = [value.slice(0, first)]
  for (let i = first; i < value.length; i += MAX_LINE - 1) parts.push(value.slice(i, i + MAX_LINE - 1))
  return parts.join(`${CRLF} `)
}

interface ParsedKey {
  readonly domain: string
  readonly selector: string
  readonly algorithm: DkimAlgorithm
  readonly key: KeyObject
}

/**
 * A signer over `keys`; each PEM is parsed here, once (keys are checked when loaded, DkimKeys.ts,
 * so a bad PEM throws here only if that step was skipped).
 */
export const makeDkimSigner = (keys: ReadonlyArray<DkimSignerKey>, options: DkimSignerOptions): DkimSigner => {
  const parsed: ReadonlyArray<ParsedKey> = keys.map((k) => ({
    domain: k.domain,
    selector: k.selector,
    algorithm: k.algorithm,
    key: createPrivateKey({ key: k.privateKeyPem, format: "pem" })
  }))
  const oversign = new Set(options.oversign.map((h) => h.toLowerCase()))

  const signOne = (k: ParsedKey, byName: ReadonlyMap<string, ReadonlyArray<string>>, bh: string, t: number) => {
    // RFC 6376 §5.4.2: every occurrence, taken from the bottom up; an oversigned name once more,
    // which selects no field and so contributes nothing to the hash.
    const names: Array<string> = []
    const selected: Array<string> = []
    for (const header of options.headers) {
      const found = byName.get(header.toLowerCase()) ?? []
      for (let i = found.length - 1; i >= 0; i--) {
        names.push(header)
        selected.push(found[i]!)
      }
      if (oversign.has(header.toLowerCase())) names.push(header)
    }
    const head = `DKIM-Signature: v=1; a=${k.algorithm}; c=relaxed/relaxed; d=${k.domain}; s=${k.selector};${CRLF} t=${t};`
    const h = ` h=${foldList(names, 3)};`
    const unsigned = `${head}${CRLF}${h}${CRLF} bh=${bh};${CRLF} b=`
    // RFC 6376 §3.7: the selected fields, then this field with an empty b= and no trailing CRLF.
    const data = Buffer.from(
      selected.map((f) => canonicalHeaderRelaxed(f) + CRLF).join("") + canonicalHeaderRelaxed(unsigned),
      "latin1"
    )
    const signature =
      k.algorithm === "rsa-sha256"
        ? sign("sha256", data, k.key)
        : // RFC 8463 §3: Ed25519 (PureEdDSA) over the SHA-256 hash of the data.
          sign(null, createHash("sha256").update(data).digest(), k.key)
    return `${unsigned}${foldBase64(signature.toString("base64"), 3)}${CRLF}`
  }

  return {
    sign: (message, time) => {
      const text = Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString("latin1")
      const { fields, body } = split(text)
      const byName = new Map<string, Array<string>>()
      for (const f of fields) {
        const name = f
          .slice(0, Math.max(0, f.indexOf(":")))
          .trimEnd()
          .toLowerCase()
        const list = byName.get(name)
        if (list === undefined) byName.set(name, [f])
        else list.push(f)
      }
      const bh = createHash("sha256").update(canonicalBodyRelaxed(body), "latin1").digest("base64")
      const t = Math.floor(time.getTime() / 1000)
      return parsed.map((k) => signOne(k, byName, bh, t)).join("")
    }
  }
}
