/**
 * The TLSRPT DNS TXT record served at `_smtp._tls.<domain>` (RFC 8460 §3): a pure parser with
 * mox's exact acceptance rules (docs/design.md#record-syntax), the printer (docs/design.md#record-model) and the reporting destinations
 * derived from its `rua=` URIs.
 */
import { Data, Either } from "effect"
import * as EmailAddress from "./EmailAddress.js"
import * as SuppressionTarget from "./SuppressionTarget.js"

export interface Extension {
  readonly key: string
  readonly value: string
}

export interface TlsrptRecord {
  readonly version: "TLSRPTv1"
  /** One inner list per `rua=` field, in record order; URIs as written in DNS (docs/design.md#record-model). */
  readonly ruas: ReadonlyArray<ReadonlyArray<string>>
  /** Unknown `key=value` fields in record order. */
  readonly extensions: ReadonlyArray<Extension>
}

/** The TXT record is not a TLSRPT record at all (another TXT at the same name): ignore it. */
export class NotTlsrpt extends Data.TaggedError("NotTlsrpt")<{
  readonly txt: string
}> {
  override get message(): string {
    return `not a TLSRPT record: ${JSON.stringify(this.txt.slice(0, 300))}`
  }
}

/**
 * The record starts like a TLSRPT record (`v=TLSRPTv1;`) but is invalid: RFC 8460 §3 says the
 * domain then does not implement TLSRPT.
 */
export class RecordSyntaxError extends Data.TaggedError("RecordSyntaxError")<{
  readonly txt: string
  readonly reason: string
  /** Offset in `txt` (UTF-16 code units) where parsing failed. */
  readonly position: number
}> {
  override get message(): string {
    return `TLSRPT record syntax error at ${this.position}: ${this.reason} in ${JSON.stringify(this.txt.slice(0, 300))}`
  }
}

// Internal control flow of the recursive-descent parser; caught in `parse`, never escapes it.
class Failure {
  constructor(
    readonly reason: string,
    readonly position: number
  ) {}
}

class Parser {
  o = 0
  constructor(readonly s: string) {}

  fail(reason: string, position: number = this.o): never {
    throw new Failure(reason, position)
  }

  empty(): boolean {
    return this.o >= this.s.length
  }

  take(prefix: string): boolean {
    if (!this.s.startsWith(prefix, this.o)) return false
    this.o += prefix.length
    return true
  }

  wsp(): void {
    while (this.o < this.s.length && isWsp(this.s[this.o]!)) this.o++
  }

  // docs/design.md#record-syntax: optional WSP, `;`, optional WSP; consumes nothing when absent.
  delim(): boolean {
    let o = this.o
    const e = this.s.length
    while (o < e && isWsp(this.s[o]!)) o++
    if (o >= e || this.s[o] !== ";") return false
    o++
    while (o < e && isWsp(this.s[o]!)) o++
    this.o = o
    return true
  }

  // One or more chars accepted by `ok`; `what` names the expected token in the error.
  takeWhile1(what: string, ok: (c: string, i: number) => boolean): string {
    const start = this.o
    let i = 0
    while (start + i < this.s.length && ok(this.s[start + i]!, i)) i++
    if (i === 0) this.fail(`expected ${what}`)
    this.o = start + i
    return this.s.slice(start, start + i)
  }

  // docs/design.md#record-syntax: letters and digits anywhere, `_` after the first position, `-` and `.` anywhere
  // (mox's operator-precedence quirk); reading stops at 32 characters.
  key(): string {
    return this.takeWhile1("key", (c, i) => i < 32 && (isAlnum(c) || (i > 0 && c === "_") || c === "-" || c === "."))
  }

  // RFC 8460 §3 ext-value: 0x21–0x7E except `=` and `;`.
  value(): string {
    return this.takeWhile1("value", (c) => c > " " && c < "\x7f" && c !== "=" && c !== ";")
  }

  uri(): string {
    const start = this.o
    const v = this.takeWhile1("uri", (c) => c !== "," && c !== "!" && c !== " " && c !== "\t" && c !== ";")
    const error = uriError(v)
    if (error !== undefined) this.fail(`invalid uri ${JSON.stringify(v)}: ${error}`, start)
    return v
  }

  // docs/design.md#record-syntax: URI *(*WSP "," *WSP URI) *WSP.
  ruas(): ReadonlyArray<string> {
    const list = [this.uri()]
    this.wsp()
    while (this.take(",")) {
      this.wsp()
      list.push(this.uri())
      this.wsp()
    }
    return list
  }
}

const isWsp = (c: string): boolean => c === " " || c === "\t"
const isAlpha = (c: string): boolean => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z")
const isDigit = (c: string): boolean => c >= "0" && c <= "9"
const isAlnum = (c: string): boolean => isAlpha(c) || isDigit(c)

/**
 * Parses one TXT record (its character-strings already joined). `NotTlsrpt` when the text does not
 * start with `v=TLSRPTv1` and a `;` delimiter (docs/design.md#record-syntax), `RecordSyntaxError` for any
 * later problem. Never throws.
 */
export const parse = (txt: string): Either.Either<TlsrptRecord, NotTlsrpt | RecordSyntaxError> => {
  if (typeof txt !== "string") return Either.left(new NotTlsrpt({ txt: String(txt) }))
  const p = new Parser(txt)
  // Rules 1–2: exact, case-sensitive prefix, then a delimiter (`v=TLSRPTv10` is not TLSRPT).
  if (!p.take("v=TLSRPTv1") || !p.delim()) return Either.left(new NotTlsrpt({ txt }))
  const ruas: Array<ReadonlyArray<string>> = []
  const extensions: Array<Extension> = []
  try {
    for (;;) {
      const key = p.key()
      if (!p.take("=")) p.fail(`expected "=" after key ${JSON.stringify(key)}`)
      // Duplicates are allowed; only the exact lower-case `rua` is the reporting field.
      if (key === "rua") ruas.push(p.ruas())
      else extensions.push({ key, value: p.value() })
      // One trailing delimiter is allowed.
      if (!p.delim() || p.empty()) break
    }
    if (!p.empty()) p.fail("leftover chars")
    if (ruas.length === 0) p.fail("missing rua")
  } catch (e) {
    if (e instanceof Failure) {
      return Either.left(new RecordSyntaxError({ txt, reason: e.reason, position: e.position }))
    }
    throw e
  }
  return Either.right({ version: "TLSRPTv1", ruas, extensions })
}

/** A RUA as printed in a record: `,` `!` `;` percent-encoded (docs/design.md#record-model). */
export const escapeRua = (rua: string): string =>
  rua.replaceAll(",", "%2C").replaceAll("!", "%21").replaceAll(";", "%3B")

/** The record as TXT text: `v=TLSRPTv1; rua=a,b; key=value` (docs/design.md#record-model). */
const print = (record: TlsrptRecord): string => {
  let s = `v=${record.version}`
  for (const list of record.ruas) s += `; rua=${list.map(escapeRua).join(",")}`
  for (const { key, value } of record.extensions) s += `; ${key}=${value}`
  return s
}
// Exported by alias: a local binding named `toString` would shadow Object.prototype's.
export { print as toString }

// ---------------------------------------------------------------------------------------------
// URI validity as mox decides it: Go's `net/url.Parse` must succeed and yield a non-empty scheme
// (docs/design.md#record-syntax). Only the checks that can reject input are reproduced; the result is the reason, or
// `undefined` for a valid URI.

const isHex = (c: string | undefined): boolean =>
  c !== undefined && (isDigit(c) || (c >= "a" && c <= "f") || (c >= "A" && c <= "F"))

// biome-ignore lint/suspicious/noControlCharactersInRegex: Go rejects control bytes in URLs
const CONTROL = /[\u0000-\u001f\u007f]/

// Characters Go's url package accepts unescaped in a host (RFC 3986 §3.2.2 plus its leniencies).
const HOST_OK = "!$&'()*+,;=:[]<>\"-_.~"
const hostAllowed = (c: string): boolean => isAlnum(c) || HOST_OK.includes(c)
// Go's validUserinfo: unreserved, sub-delims, `:`, `%` and `@`.
const USERINFO_OK = "-._:~!$&'()*+,;=%@"

type EscapeMode = "path" | "host" | "zone"

const unescapeError = (s: string, mode: EscapeMode): string | undefined => {
  for (let i = 0; i < s.length; ) {
    const c = s[i]!
    if (c === "%") {
      if (i + 2 >= s.length || !isHex(s[i + 1]) || !isHex(s[i + 2])) return `invalid URL escape ${s.slice(i, i + 3)}`
      const triplet = s.slice(i, i + 3)
      const byte = Number.parseInt(s.slice(i + 1, i + 3), 16)
      // RFC 3986 §3.2.2: in a host, %-encoding is only for non-ASCII bytes (RFC 6874 adds %25).
      if (mode === "host" && byte < 0x80 && triplet !== "%25") return `invalid URL escape ${triplet}`
      if (
        mode === "zone" &&
        triplet !== "%25" &&
        byte !== 0x20 &&
        !(byte < 0x80 && hostAllowed(String.fromCharCode(byte)))
      )
        return `invalid URL escape ${triplet}`
      i += 3
    } else {
      if (mode !== "path" && c < "\x80" && !hostAllowed(c)) return `invalid character ${JSON.stringify(c)} in host name`
      i++
    }
  }
  return undefined
}

const validOptionalPort = (port: string): boolean => port === "" || /^:[0-9]*$/.test(port)

const hostError = (host: string): string | undefined => {
  if (host.startsWith("[")) {
    const i = host.lastIndexOf("]")
    if (i < 0) return "missing ']' in host"
    const port = host.slice(i + 1)
    if (!validOptionalPort(port)) return `invalid port ${JSON.stringify(port)} after host`
    // RFC 6874: `%25` introduces an IPv6 zone identifier, which has its own escaping rules.
    const zone = host.slice(0, i).indexOf("%25")
    if (zone >= 0) {
      return (
        unescapeError(host.slice(0, zone), "host") ??
        unescapeError(host.slice(zone, i), "zone") ??
        unescapeError(host.slice(i), "host")
      )
    }
  } else {
    const i = host.lastIndexOf(":")
    if (i >= 0 && !validOptionalPort(host.slice(i))) return `invalid port ${JSON.stringify(host.slice(i))} after host`
  }
  return unescapeError(host, "host")
}

const authorityError = (authority: string): string | undefined => {
  const at = authority.lastIndexOf("@")
  const error = hostError(authority.slice(at + 1))
  if (error !== undefined || at < 0) return error
  const userinfo = authority.slice(0, at)
  for (const c of userinfo) if (!isAlnum(c) && !USERINFO_OK.includes(c)) return "invalid userinfo"
  return unescapeError(userinfo, "path")
}

/** Why Go's `url.Parse` (as used by mox) rejects `v` or finds no scheme; `undefined` when valid. */
const uriError = (v: string): string | undefined => {
  const hash = v.indexOf("#")
  const u = hash < 0 ? v : v.slice(0, hash)
  if (CONTROL.test(u)) return "invalid control character in URL"
  let colon = -1
  for (let i = 0; i < u.length; i++) {
    const c = u[i]!
    if (isAlpha(c)) continue
    if (isDigit(c) || c === "+" || c === "-" || c === ".") {
      if (i === 0) break
      continue
    }
    if (c === ":") {
      if (i === 0) return "missing protocol scheme"
      colon = i
    }
    break
  }
  if (colon < 0) return "missing scheme"
  let rest = u.slice(colon + 1)
  const q = rest.indexOf("?")
  if (q >= 0) rest = rest.slice(0, q)
  // A rootless rest (`mailto:x@y`) is opaque: Go validates nothing more in it.
  if (rest.startsWith("/")) {
    let path = rest
    if (rest.startsWith("//")) {
      const slash = rest.indexOf("/", 2)
      const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash)
      path = slash < 0 ? "" : rest.slice(slash)
      const error = authorityError(authority)
      if (error !== undefined) return error
    }
    const error = unescapeError(path, "path")
    if (error !== undefined) return error
  }
  return hash < 0 ? undefined : unescapeError(v.slice(hash + 1), "path")
}

// ---------------------------------------------------------------------------------------------
// Reporting destinations (RFC 8460 §3 `rua`): mailto and https; anything else is kept for logs.

export type Destination =
  | { readonly _tag: "Mailto"; readonly uri: string; readonly address: EmailAddress.EmailAddress }
  | { readonly _tag: "Https"; readonly uri: string; readonly url: string }
  | { readonly _tag: "Unsupported"; readonly uri: string; readonly reason: string }

/** One RUA as a destination. Scheme compared case-insensitively (RFC 3986 §3.1). */
export const destination = (uri: string): Destination => {
  const colon = uri.indexOf(":")
  const scheme = colon < 0 ? "" : uri.slice(0, colon).toLowerCase()
  if (scheme === "mailto") {
    // As Go's url.Parse, which mox uses: the address is the opaque part, before `?` and `#`. A rest
    // that starts with `/` (`mailto://x@y`) is an authority or path, not an address: mox skips it.
    const opaque = uri.slice(colon + 1).split("#", 1)[0]!
    if (opaque.startsWith("/"))
      return { _tag: "Unsupported", uri, reason: "invalid mailto address: not an opaque mailto URI (RFC 6068 §2)" }
    const q = opaque.indexOf("?")
    const raw = q < 0 ? opaque : opaque.slice(0, q)
    // The record escapes `,` `!` `;` inside a RUA (RFC 8460 §3); other escapes are left as written
    // (docs/design.md#mailto-percent-decoding).
    const addr = raw.replace(/%(2c|21|3b)/gi, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16)))
    return Either.match(EmailAddress.parse(addr), {
      onLeft: (e) => ({ _tag: "Unsupported", uri, reason: `invalid mailto address: ${e.reason}` }),
      onRight: (address) => ({ _tag: "Mailto", uri, address })
    })
  }
  if (scheme === "https") {
    return Either.match(SuppressionTarget.normalizeUrl(uri), {
      onLeft: () => ({ _tag: "Unsupported", uri, reason: "invalid https URL" }),
      onRight: (url) => ({ _tag: "Https", uri, url })
    })
  }
  return { _tag: "Unsupported", uri, reason: scheme === "" ? "missing scheme" : `unsupported scheme "${scheme}"` }
}

/** All RUAs of all `rua=` fields in record order, duplicates kept. */
export const destinations = (record: TlsrptRecord): ReadonlyArray<Destination> =>
  record.ruas.flatMap((list) => list.map(destination))
