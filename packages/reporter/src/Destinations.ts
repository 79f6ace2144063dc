/**
 * Which reporting destinations of a TLSRPT record get the report (docs/design.md#reporting-destinations):
 * mailto always, https when on (RFC 8460 §3), at most MAX_DESTINATIONS of them
 * (docs/design.md#destination-cap), each address or URL once, none that is suppressed
 * (docs/design.md#suppression-and-queueing). One pure function for the round and the CLI `lookup`.
 */
import type { EmailAddress, TlsrptRecord } from "@tlsrpt/core"

/**
 * At most this many reporting URIs of one record get the report. RFC 8460 sets no limit, but a policy
 * domain must not turn one report into thousands of messages from us (a TXT record over TCP can list
 * hundreds of addresses); real records list one or two.
 */
export const MAX_DESTINATIONS = 10

type Mailto = Extract<TlsrptRecord.Destination, { readonly _tag: "Mailto" }>
type Https = Extract<TlsrptRecord.Destination, { readonly _tag: "Https" }>

/** What happens to one listed destination. */
export type Verdict =
  /** Gets the signed report mail. */
  | "mail"
  /** Gets the gzip report by POST. */
  | "post"
  /** An earlier destination has the same address (any spelling) or URL: one message each. */
  | "duplicate"
  /** On the suppression list. */
  | "suppressed"
  /** An https URI while https reporting is off. */
  | "https-off"
  /** A usable destination beyond MAX_DESTINATIONS. */
  | "capped"
  /** Neither mailto nor https, or malformed. */
  | "unsupported"

export interface Choice {
  readonly destination: TlsrptRecord.Destination
  readonly verdict: Verdict
}

export interface Selection {
  /** Every listed destination with its verdict, in record order. */
  readonly choices: ReadonlyArray<Choice>
  /**
   * The usable mailto and https destinations within the cap, in record order, repeats included: their
   * rua strings are what phase 1 stores and phase 2 compares (docs/design.md#phase-2-skip-per-kind).
   */
  readonly mailto: ReadonlyArray<Mailto>
  readonly https: ReadonlyArray<Https>
  /** The mail recipients: each address once (first spelling), not suppressed. */
  readonly to: ReadonlyArray<EmailAddress.EmailAddress>
  /** The https URLs to POST to: each once, not suppressed. */
  readonly urls: ReadonlyArray<string>
  /** How many usable destinations the record lists (more than MAX_DESTINATIONS: capped). */
  readonly usable: number
}

/** The suppression list's key of a destination: the normalised address, or the URL (docs/design.md#suppression-list). */
export const suppressionTarget = (d: Mailto | Https): string => (d._tag === "Mailto" ? d.address.normalized : d.url)

/**
 * docs/design.md#reporting-destinations. `isSuppressed` is asked about `suppressionTarget`s; without it
 * nothing is suppressed (the round asks the store only for the kinds it sends).
 */
export const select = (
  destinations: ReadonlyArray<TlsrptRecord.Destination>,
  options: { readonly https: boolean; readonly isSuppressed?: ((target: string) => boolean) | undefined }
): Selection => {
  const choices: Array<Choice> = []
  const mailto: Array<Mailto> = []
  const https: Array<Https> = []
  const to: Array<EmailAddress.EmailAddress> = []
  const urls: Array<string> = []
  const seen = new Set<string>()
  let usable = 0
  for (const d of destinations) {
    const verdict = ((): Verdict => {
      if (d._tag === "Unsupported") return "unsupported"
      if (d._tag === "Https" && !options.https) return "https-off"
      // docs/design.md#destination-cap: repeats count towards the cap, as listed.
      if (++usable > MAX_DESTINATIONS) return "capped"
      if (d._tag === "Mailto") mailto.push(d)
      else https.push(d)
      const target = suppressionTarget(d)
      if (seen.has(target)) return "duplicate"
      seen.add(target)
      if (options.isSuppressed?.(target) === true) return "suppressed"
      if (d._tag === "Mailto") {
        to.push(d.address)
        return "mail"
      }
      urls.push(d.url)
      return "post"
    })()
    choices.push({ destination: d, verdict })
  }
  return { choices, mailto, https, to, urls, usable }
}

/** One line per verdict, for the CLI `lookup`. */
export const explain = (choice: Choice, options: { readonly httpsSetting: string }): string => {
  const d = choice.destination
  const target = d._tag === "Unsupported" ? d.uri : suppressionTarget(d)
  switch (choice.verdict) {
    case "mail":
      return `mail a DKIM-signed report to ${target}`
    case "post":
      return "POST the gzip report (application/tlsrpt+gzip)"
    case "duplicate":
      return `skip: ${target} is listed earlier`
    case "suppressed":
      return `skip: ${target} is on the suppression list`
    case "https-off":
      return `skip: https reporting is off (${options.httpsSetting} = false)`
    case "capped":
      return `skip: only the first ${MAX_DESTINATIONS} usable destinations get the report`
    case "unsupported":
      return `skip: ${d._tag === "Unsupported" ? d.reason : "unsupported"}`
  }
}
