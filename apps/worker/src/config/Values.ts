/**
 * The value types of the configuration as Schemas that decode the file's (and the environment's)
 * strings: domains, mail addresses, DKIM selectors (`host:port` is core's `HostPort`, a duration core's
 * `DurationString`; each section is its consuming package's Schema). Each message
 * names what was expected, so a config error line says what to write instead.
 */
import { Domain, DurationString as CoreDurationString, EmailAddress } from "@tlsrpt/core"
import { Either, Schema } from "effect"

/** `"4h"`, `"5m"`, `"240s"`, `"1500ms"`, `"1d"`, or effect's `"4 hours"` (core's `DurationString`). */
export const DurationString = CoreDurationString.schema

export const NonEmpty = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))

export const DomainString = Domain.FromString

export const Address = Schema.String.pipe(
  Schema.filter((s) => Either.isRight(EmailAddress.parse(s)) || `expected a mail address, got ${JSON.stringify(s)}`)
)

const SELECTOR_LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/

/**
 * A DKIM selector (RFC 6376 §3.1): dot-separated DNS labels of letters, digits, `-` and `_`, each 1–63
 * characters, not starting or ending with `-`. It becomes a DNS name and part of the key's file name
 * (`init`), so nothing else (no `/`, no `..`) passes.
 */
export const isSelector = (s: string): boolean => s.length <= 200 && s.split(".").every((l) => SELECTOR_LABEL.test(l))
export const SELECTOR_EXPECTED = "expected a DKIM selector: DNS labels of letters, digits, - and _, separated by dots"
