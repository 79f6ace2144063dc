/**
 * A DNS domain name in both its A-label (`xn--…`, ASCII) and U-label (Unicode) forms.
 *
 * One parser builds it; everything that writes a domain into a report, header, subject, filename
 * or database key uses `ascii` (docs/design.md#domain-normal-form: one normal form, A-labels on the wire).
 */
import { domainToASCII, domainToUnicode } from "node:url"
import { type Brand, Data, Either, ParseResult, Schema } from "effect"

export interface Domain extends Brand.Brand<"Domain"> {
  /** Lower-case A-label form without a trailing dot, e.g. `xn--74h.example`. */
  readonly ascii: string
  /** U-label form, e.g. `☺.example`. Only for display to people. */
  readonly unicode: string
}

export type DomainErrorReason =
  | "empty"
  | "too-long"
  | "empty-label"
  | "label-too-long"
  | "control-character"
  | "space"
  | "at-sign"
  | "invalid-idna"
  | "invalid-character"
  | "hyphen-at-label-edge"
  | "numeric-tld"

export class DomainError extends Data.TaggedError("DomainError")<{
  readonly input: string
  readonly reason: DomainErrorReason
}> {
  override get message(): string {
    return `invalid domain ${JSON.stringify(this.input.slice(0, 300))}: ${this.reason}`
  }
}

const fail = (input: string, reason: DomainErrorReason) => Either.left(new DomainError({ input, reason }))

// RFC 1035 §2.3.4 limits: 63 octets a label, 253 for the textual name without the final dot.
const MAX_LABEL = 63
const MAX_NAME = 253
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it detects
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
const ASCII_LABEL = /^[a-z0-9_-]+$/
// ASCII outside letters, digits, `.`, `-`, `_`. Checked before IDNA: the WHATWG host parser in
// `node:url` percent-decodes (`ex%61mple` → `example`) and cuts at `/`, `?`, `#` (`a/b` → `a`).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are among those refused
const BAD_ASCII = /[\u0000-\u002c\u002f\u003a-\u0040\u005b-\u005e\u0060\u007b-\u007f]/

/**
 * Parses a domain name from user, DNS or database input. Lower-cases, drops one trailing dot,
 * converts IDNA (UTS #46 through WHATWG URL's host parser in `node:url`) and validates label syntax.
 */
export const parse = (input: string): Either.Either<Domain, DomainError> => {
  if (typeof input !== "string" || input.length === 0) return fail(String(input), "empty")
  if (CONTROL.test(input)) return fail(input, "control-character")
  if (/\s/u.test(input)) return fail(input, "space")
  if (input.includes("@")) return fail(input, "at-sign")
  if (BAD_ASCII.test(input)) return fail(input, "invalid-character")
  if (input.length > 4 * MAX_NAME) return fail(input, "too-long")
  const name = input.endsWith(".") ? input.slice(0, -1) : input
  if (name.length === 0) return fail(input, "empty")
  if (name.split(".").some((l) => l.length === 0)) return fail(input, "empty-label")
  const ascii = domainToASCII(name)
  if (ascii === "") return fail(input, "invalid-idna")
  const labels = ascii.split(".")
  for (const label of labels) {
    if (label.length === 0) return fail(input, "empty-label")
    if (label.length > MAX_LABEL) return fail(input, "label-too-long")
    if (!ASCII_LABEL.test(label)) return fail(input, "invalid-character")
    if (label.startsWith("-") || label.endsWith("-")) return fail(input, "hyphen-at-label-edge")
  }
  if (ascii.length > MAX_NAME) return fail(input, "too-long")
  // A numeric last label makes WHATWG treat the name as an IPv4 address (`0x7f.1` → `127.0.0.1`).
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return fail(input, "numeric-tld")
  const unicode = domainToUnicode(ascii)
  return Either.right({ ascii, unicode } as Domain)
}

/** For literals known to be valid (tests, constants). Throws on invalid input. */
export const unsafeMake = (input: string): Domain => Either.getOrThrowWith(parse(input), (e) => new Error(e.message))

export const equals = (a: Domain, b: Domain): boolean => a.ascii === b.ascii

/** mox's "log string": plain ASCII, or `unicode/ascii` for IDNA names (docs/design.md#message-composition). */
export const toLogString = (d: Domain): string => (d.unicode === d.ascii ? d.ascii : `${d.unicode}/${d.ascii}`)

export const DomainFromSelf: Schema.Schema<Domain> = Schema.declare(
  (u): u is Domain =>
    typeof u === "object" &&
    u !== null &&
    typeof (u as Domain).ascii === "string" &&
    typeof (u as Domain).unicode === "string",
  { identifier: "Domain" }
)

/** Decodes any accepted spelling of a domain; encodes to the A-label form. */
export const FromString: Schema.Schema<Domain, string> = Schema.transformOrFail(Schema.String, DomainFromSelf, {
  strict: true,
  decode: (s, _, ast) => Either.mapLeft(parse(s), (e) => new ParseResult.Type(ast, s, e.message)),
  encode: (d) => ParseResult.succeed(d.ascii)
})
