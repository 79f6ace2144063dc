/**
 * The value types of the configuration as Schemas that decode the file's (and the environment's)
 * strings: durations, domains, mail addresses, DKIM selectors (`host:port` is core's `HostPort`, the
 * DNS and transport sections are the dns and mail packages' Schemas). Each message
 * names what was expected, so a config error line says what to write instead.
 */
import { Domain, EmailAddress } from "@tlsrpt/core"
import { Duration, Either, Option, ParseResult, Schema } from "effect"

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `"4h"`, `"5m"`, `"240s"`, `"1500ms"`, `"1d"`, or effect's `"4 hours"`. */
export const DurationString = Schema.transformOrFail(Schema.String, Schema.DurationFromSelf, {
  strict: true,
  decode: (s, _, ast) => {
    const m = DURATION.exec(s.trim())
    if (m !== null) return ParseResult.succeed(Duration.millis(Number(m[1]) * UNIT_MS[m[2]!]!))
    const d = Duration.decodeUnknown(s)
    return Option.isSome(d) && Duration.toMillis(d.value) >= 0
      ? ParseResult.succeed(d.value)
      : ParseResult.fail(
          new ParseResult.Type(ast, s, `expected a duration like "4h", "5m", "240s", got ${JSON.stringify(s)}`)
        )
  },
  encode: (d) => ParseResult.succeed(`${Duration.toMillis(d)}ms`)
})

/**
 * A duration within `[min, max]`. The round's window must end before the next day's round starts, and a
 * timer beyond 2^31 ms fires at once or never (Node's setTimeout), so the ranges are the schedule's:
 * window up to 23 h, gap and jitter up to 1 h.
 */
export const boundedDuration = (min: Duration.Duration, max: Duration.Duration) =>
  DurationString.pipe(
    Schema.filter(
      (d) =>
        (Duration.greaterThanOrEqualTo(d, min) && Duration.lessThanOrEqualTo(d, max)) ||
        `expected a duration between ${Duration.format(min)} and ${Duration.format(max)}, got ${Duration.format(d)}`
    )
  )

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
