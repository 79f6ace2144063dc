/**
 * A mailbox address `local@domain` with the domain parsed as a `Domain`. The normal form (used
 * for suppression matching and outbox destinations) is lower case with the A-label domain
 * (docs/design.md#normalised-suppression-addresses).
 */
import { Data, Either } from "effect"
import * as Domain from "./Domain.js"

export interface EmailAddress {
  readonly localPart: string
  readonly domain: Domain.Domain
  /** `local@a-label-domain`, lower case: for comparison only (suppression, de-duplication). */
  readonly normalized: string
  /**
   * `local@a-label-domain` with the local part as published: the SMTP recipient. RFC 5321 §2.4: the
   * local part is case-sensitive, so only the receiver may fold it.
   */
  readonly mailbox: string
}

export class EmailAddressError extends Data.TaggedError("EmailAddressError")<{
  readonly input: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid address ${JSON.stringify(this.input.slice(0, 300))}: ${this.reason}`
  }
}

// RFC 5321 §4.1.2 Dot-string atext; quoted local parts are refused (no report address needs one).
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+)*$/
// RFC 5321 §4.5.3.1.1: 64 octets (UTF-8 octets for RFC 6531 addresses).
const MAX_LOCAL = 64
// The non-ASCII range above admits C1 controls, Unicode spaces and unpaired surrogates: refused.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it detects
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\s\p{Cs}]/u
const octets = (s: string): number => new TextEncoder().encode(s).length

export const parse = (input: string): Either.Either<EmailAddress, EmailAddressError> => {
  const fail = (reason: string) => Either.left(new EmailAddressError({ input, reason }))
  if (typeof input !== "string") return fail("not a string")
  const at = input.lastIndexOf("@")
  if (at <= 0) return fail("missing local part or @")
  const localPart = input.slice(0, at)
  if (FORBIDDEN.test(localPart)) return fail("control character, space or unpaired surrogate in local part")
  const lower = localPart.toLowerCase()
  // Lower-casing may lengthen (`İ` → `i̇`): the normal form must parse again, so both are checked.
  if (octets(localPart) > MAX_LOCAL || octets(lower) > MAX_LOCAL) return fail("local part longer than 64 octets")
  if (!LOCAL.test(localPart)) return fail("invalid local part")
  return Either.match(Domain.parse(input.slice(at + 1)), {
    onLeft: (e) => fail(`domain: ${e.reason}`),
    onRight: (domain) =>
      Either.right({
        localPart,
        domain,
        normalized: `${lower}@${domain.ascii}`,
        mailbox: `${localPart}@${domain.ascii}`
      })
  })
}

/** The normal form of an address, or the error. */
export const normalize = (input: string): Either.Either<string, EmailAddressError> =>
  Either.map(parse(input), (a) => a.normalized)
