/**
 * What an operator may suppress: a mail address (`rua=mailto:`) or an https reporting URI
 * (`rua=https:`). Both sides of a suppression match are put in one normal form, so the spelling in
 * DNS, on the command line and in the store never decides (docs/design.md#suppression).
 */
import { Data, Either } from "effect"
import * as EmailAddress from "./EmailAddress.js"

export class SuppressionTargetError extends Data.TaggedError("SuppressionTargetError")<{
  readonly input: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid address or https URI ${JSON.stringify(this.input.slice(0, 300))}: ${this.reason}`
  }
}

/**
 * The WHATWG form of an https URL (lower-case scheme and host, A-label host, default port dropped,
 * `%`-escapes as the URL parser writes them): what `TlsrptRecord.destination` gives as `url`.
 */
export const normalizeUrl = (input: string): Either.Either<string, SuppressionTargetError> => {
  if (!URL.canParse(input)) return Either.left(new SuppressionTargetError({ input, reason: "not a URL" }))
  const url = new URL(input)
  if (url.protocol !== "https:")
    return Either.left(new SuppressionTargetError({ input, reason: `scheme ${url.protocol} is not https:` }))
  return Either.right(url.href)
}

/**
 * `https:…` (any case) is a URL, anything else a mail address (`local@domain`, lower case, A-label
 * domain). A `mailto:` prefix is accepted and dropped, so a rua may be pasted as it is.
 */
export const normalize = (input: string): Either.Either<string, SuppressionTargetError> => {
  if (typeof input !== "string")
    return Either.left(new SuppressionTargetError({ input: String(input), reason: "not a string" }))
  const trimmed = input.trim()
  if (/^https:/i.test(trimmed)) return normalizeUrl(trimmed)
  const address = /^mailto:/i.test(trimmed) ? trimmed.slice("mailto:".length) : trimmed
  return Either.mapLeft(EmailAddress.normalize(address), (e) => new SuppressionTargetError({ input, reason: e.reason }))
}
