/**
 * Who sends the reports: the submitter domain (report-id, filename, `TLS-Report-Submitter`, DKIM
 * `d=`), the report's organization-name and contact-info, and the From address (docs/design.md#report-header, docs/design.md#message-composition).
 */
import { Domain, EmailAddress } from "@tlsrpt/core"
import { Data, Either } from "effect"

export interface Submitter {
  readonly domain: Domain.Domain
  /** RFC 8460 §4.4 organization-name; never empty (docs/design.md#conservative-json). */
  readonly organizationName: string
  /** RFC 8460 §4.4 contact-info: an email address or a URL; never empty (docs/design.md#conservative-json). */
  readonly contactInfo: string
  /** Header From and SMTP MAIL FROM (docs/design.md#message-composition). */
  readonly from: EmailAddress.EmailAddress
}

export interface SubmitterInput {
  readonly domain: string
  readonly organizationName?: string | undefined
  readonly contactInfo?: string | undefined
  readonly from?: string | undefined
}

export class SubmitterError extends Data.TaggedError("SubmitterError")<{
  readonly field: "domain" | "organizationName" | "contactInfo" | "from"
  readonly value: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid submitter ${this.field} ${JSON.stringify(this.value.slice(0, 300))}: ${this.reason}`
  }
}

// A header or JSON string must not carry line breaks or other control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it detects
const CONTROL = /[\u0000-\u001f\u007f]/
// A URI scheme (RFC 3986 §3.1) followed by ":"; `mailto:` is handled as an address.
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:/

const text = (field: "organizationName" | "contactInfo", value: string): Either.Either<string, SubmitterError> => {
  const trimmed = value.trim()
  if (trimmed.length === 0) return Either.left(new SubmitterError({ field, value, reason: "empty" }))
  if (CONTROL.test(trimmed)) return Either.left(new SubmitterError({ field, value, reason: "control character" }))
  return Either.right(trimmed)
}

/**
 * docs/design.md#submitter-identity: `TLS-Report-Submitter` equals the domain of contact-info. contact-info may be a
 * URL (RFC 8460 §4.4); when it is an email address (bare or `mailto:`), its domain must be ours.
 */
const checkContact = (domain: Domain.Domain, contactInfo: string): Either.Either<string, SubmitterError> => {
  const mailto = /^mailto:/i.test(contactInfo)
  if (!mailto && (URI.test(contactInfo) || !contactInfo.includes("@"))) return Either.right(contactInfo)
  const address = mailto ? contactInfo.slice(7).split("?")[0]! : contactInfo
  return Either.match(EmailAddress.parse(address), {
    onLeft: (e) => Either.left(new SubmitterError({ field: "contactInfo", value: contactInfo, reason: e.reason })),
    onRight: (a) =>
      Domain.equals(a.domain, domain)
        ? Either.right(contactInfo)
        : Either.left(
            new SubmitterError({
              field: "contactInfo",
              value: contactInfo,
              reason: `address domain ${a.domain.ascii} differs from the submitter domain ${domain.ascii}`
            })
          )
  })
}

/**
 * The From domain must be the submitter domain or below it, so the DKIM signature (`d=` submitter)
 * aligns with From (RFC 7489 §3.1.1 relaxed alignment). The local part must be ASCII: reports never
 * need SMTPUTF8 (docs/design.md#message-composition).
 */
const checkFrom = (domain: Domain.Domain, from: string): Either.Either<EmailAddress.EmailAddress, SubmitterError> => {
  const fail = (reason: string) => Either.left(new SubmitterError({ field: "from", value: from, reason }))
  return Either.flatMap(
    Either.mapLeft(
      EmailAddress.parse(from),
      (e) => new SubmitterError({ field: "from", value: from, reason: e.reason })
    ),
    (a) => {
      if (!/^[\x21-\x7e]+$/.test(a.localPart)) return fail("non-ASCII local part would need SMTPUTF8")
      const d = a.domain.ascii
      if (d !== domain.ascii && !d.endsWith(`.${domain.ascii}`)) {
        return fail(`domain ${d} does not align with the submitter domain ${domain.ascii} (DKIM d=)`)
      }
      return Either.right(a)
    }
  )
}

/**
 * Validates the configured submitter. Defaults: organization-name = the domain's A-label,
 * contact-info and From = `postmaster@<domain>` (docs/design.md#report-header).
 */
export const makeSubmitter = (input: SubmitterInput): Either.Either<Submitter, SubmitterError> =>
  Either.gen(function* () {
    const domain = yield* Either.mapLeft(
      Domain.parse(input.domain),
      (e) => new SubmitterError({ field: "domain", value: String(input.domain), reason: e.reason })
    )
    const postmaster = `postmaster@${domain.ascii}`
    const organizationName = yield* text("organizationName", input.organizationName ?? domain.ascii)
    const contactInfo = yield* Either.flatMap(text("contactInfo", input.contactInfo ?? postmaster), (c) =>
      checkContact(domain, c)
    )
    const from = yield* checkFrom(domain, input.from ?? postmaster)
    return { domain, organizationName, contactInfo, from }
  })

/** `local@a-label`: the From header and MAIL FROM value (domains on the wire are A-labels). */
export const fromAddress = (submitter: Submitter): string =>
  `${submitter.from.localPart}@${submitter.from.domain.ascii}`
