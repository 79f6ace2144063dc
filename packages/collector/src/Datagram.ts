/**
 * The libtlsrpt datagram (sys4/libtlsrpt, sent by Postfix ≥ 3.10 with `smtp_tlsrpt_enable = yes`):
 * one JSON object per Unix datagram, one datagram per delivery request, and its mapping to result
 * rows. The mapping gives what sys4's tlsrpt-collectd + tlsrpt-reportd would report for the same
 * datagrams (README.md#postfix-libtlsrpt):
 * - every policy of a datagram is one session, a success or a failure by its `f` (sys4 counts
 *   `cntrtotal += 1`, `cntrfailure += f`); each failure detail counts one failed session;
 * - the row is keyed by the datagram's `d` (lower case, one trailing dot removed), as policy domain
 *   AND recipient domain: Postfix looks TLSRPT up at the next-hop domain only, so DANE results go to
 *   that domain's rua too; the day is the UTC day the datagram was received;
 * - the policy object keeps the policy's own strings as sent (`policy-domain` is the DANE base
 *   domain for TLSA; `d` as sent when omitted, as older Postfix does for no-policy-found);
 * - `t` (number of details) and `pr` (the record Postfix saw) are not stored: the count is the
 *   details themselves, and the record is looked up again when the report is sent (RFC 8460 §3).
 */
import { isUtf8 } from "node:buffer"
import { type Day, Domain, type PolicyResult } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import { Either, ParseResult, Schema } from "effect"
import { formatPath } from "./internal/OutcomeRules.js"

/** libtlsrpt's `tlsrpt_failure_t` codes and their RFC 8460 §4.3 result types. */
export const RESULT_CODES = {
  201: "starttls-not-supported",
  202: "certificate-host-mismatch",
  203: "certificate-not-trusted",
  204: "certificate-expired",
  205: "validation-failure",
  301: "sts-policy-fetch-error",
  302: "sts-policy-invalid",
  303: "sts-webpki-invalid",
  304: "tlsa-invalid",
  305: "dnssec-invalid",
  306: "dane-required"
} as const satisfies Record<number, PolicyResult.ResultType>

/** libtlsrpt's policy types: 1 tlsa, 2 sts, 9 no-policy-found. */
export const POLICY_TYPES = { 1: "tlsa", 2: "sts", 9: "no-policy-found" } as const satisfies Record<
  number,
  PolicyResult.PolicyType
>

const Code = Schema.Literal(201, 202, 203, 204, 205, 301, 302, 303, 304, 305, 306)
const PolicyTypeCode = Schema.Literal(1, 2, 9)
const opt = <A, I>(s: Schema.Schema<A, I>) => Schema.optional(s)
const Strings = Schema.Array(Schema.String)

export const DatagramFailure = Schema.Struct({
  c: Code,
  /** sending-mta-ip */
  s: opt(Schema.String),
  /** receiving-mx-hostname */
  n: opt(Schema.String),
  /** receiving-mx-helo (Postfix: the whole EHLO reply, CRLF-joined) */
  h: opt(Schema.String),
  /** receiving-ip */
  r: opt(Schema.String),
  /** additional-information */
  a: opt(Schema.String),
  /** failure-reason-code */
  f: opt(Schema.String)
})

export const DatagramPolicy = Schema.Struct({
  "policy-type": PolicyTypeCode,
  "policy-domain": opt(Schema.String),
  "policy-string": opt(Strings),
  "mx-host": opt(Strings),
  "failure-details": opt(Schema.Array(DatagramFailure)),
  /** Number of failure details the MTA added; a mismatch is only worth a log line (sys4 does the same). */
  t: opt(Schema.NonNegativeInt),
  /** Final result of the policy: 0 success, 1 failure. */
  f: Schema.Literal(0, 1)
})

export const Datagram = Schema.Struct({
  /** Datagram protocol version, "1"; missing before libtlsrpt 0.5.0. Other values are processed. */
  dpv: opt(Schema.String),
  d: Schema.String.pipe(Schema.minLength(1)),
  pr: opt(Schema.String),
  policies: Schema.NonEmptyArray(DatagramPolicy)
})
export type Datagram = typeof Datagram.Type

/** Why a datagram was not stored. `field` is the path of the offending value. */
export class InvalidDatagram extends Schema.TaggedError<InvalidDatagram>()("InvalidDatagram", {
  reason: Schema.Literal("invalid-json", "invalid"),
  field: Schema.String,
  message: Schema.String
}) {}

const decodeEither = Schema.decodeUnknownEither(Datagram, { errors: "first" })

// ---------------------------------------------------------------------------------------------------
// The Schema's rules written out for the receive path: the Schema decode costs ~15 µs a datagram, a
// third of the whole budget at 50k datagrams/s. test/Datagram.test.ts checks that both agree; the
// Schema still gives the message when a datagram is refused.

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const optString = (u: unknown) => u === undefined || typeof u === "string"
const optStrings = (u: unknown) => {
  if (u === undefined) return true
  if (!Array.isArray(u)) return false
  for (let i = 0; i < u.length; i++) if (typeof u[i] !== "string") return false
  return true
}
const isCode = (u: unknown) => typeof u === "number" && Object.hasOwn(RESULT_CODES, u)

const isFailure = (u: unknown) =>
  isObject(u) &&
  isCode(u.c) &&
  optString(u.s) &&
  optString(u.n) &&
  optString(u.h) &&
  optString(u.r) &&
  optString(u.a) &&
  optString(u.f)

const isPolicy = (u: unknown): boolean => {
  if (!isObject(u)) return false
  const type = u["policy-type"]
  if (type !== 1 && type !== 2 && type !== 9) return false
  if (u.f !== 0 && u.f !== 1) return false
  if (u.t !== undefined && !(typeof u.t === "number" && Number.isSafeInteger(u.t) && u.t >= 0)) return false
  if (!optString(u["policy-domain"]) || !optStrings(u["policy-string"]) || !optStrings(u["mx-host"])) return false
  const details = u["failure-details"]
  if (details === undefined) return true
  if (!Array.isArray(details)) return false
  for (let i = 0; i < details.length; i++) if (!isFailure(details[i])) return false
  return true
}

/** True when the Schema would accept `u` (then `u` reads as a `Datagram`: its extra keys are never read). */
export const isDatagram = (u: unknown): u is Datagram => {
  if (!isObject(u)) return false
  if (typeof u.d !== "string" || u.d.length === 0 || !optString(u.dpv) || !optString(u.pr)) return false
  const policies = u.policies
  if (!Array.isArray(policies) || policies.length === 0) return false
  for (let i = 0; i < policies.length; i++) if (!isPolicy(policies[i])) return false
  return true
}

/** A decoded datagram and the facts worth a log line. */
export interface Decoded {
  readonly datagram: Datagram
  /** Bytes that were not UTF-8 were replaced by U+FFFD. */
  readonly repaired: boolean
}

/** The text of a datagram's bytes, and whether some were not UTF-8 (replaced by U+FFFD). */
const textOf = (bytes: Uint8Array): { readonly text: string; readonly repaired: boolean } => ({
  text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
  repaired: !isUtf8(bytes)
})

/** Decodes the bytes of one datagram (raw bytes ≥ 0x80 need not be UTF-8: libtlsrpt passes them through). */
export const decode = (bytes: Uint8Array): Either.Either<Decoded, InvalidDatagram> => {
  const { text, repaired } = textOf(bytes)
  return decodeText(text, repaired)
}

const decodeText = (text: string, repaired: boolean): Either.Either<Decoded, InvalidDatagram> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    return Either.left(new InvalidDatagram({ reason: "invalid-json", field: "", message: (e as Error).message }))
  }
  if (isDatagram(value)) return Either.right({ datagram: value, repaired })
  return Either.match(decodeEither(value), {
    onLeft: (e) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
      return Either.left(
        new InvalidDatagram({
          reason: "invalid",
          field: issue === undefined ? "" : formatPath(issue.path),
          message: issue?.message ?? "invalid"
        })
      )
    },
    onRight: (datagram) => Either.right({ datagram, repaired })
  })
}

// Datagrams repeat their domains; remember the parsed ones (bounded, cleared when full).
const domains = new Map<string, Domain.Domain>()

/** sys4's key: `d` lower-cased with one trailing dot removed; it must be a domain name. */
export const domainOf = (d: string): Either.Either<Domain.Domain, InvalidDatagram> => {
  const known = domains.get(d)
  if (known !== undefined) return Either.right(known)
  let name = d.toLowerCase()
  if (name.endsWith(".")) name = name.slice(0, -1)
  return Either.match(Domain.parse(name), {
    onLeft: (e) => Either.left(new InvalidDatagram({ reason: "invalid", field: "d", message: e.message })),
    onRight: (domain) => {
      if (domains.size >= 65_536) domains.clear()
      domains.set(d, domain)
      return Either.right(domain)
    }
  })
}

const EMPTY: ReadonlyArray<string> = []
const NO_DETAILS: ReadonlyArray<PolicyResult.FailureDetails> = []

const detailOf = (fd: typeof DatagramFailure.Type): PolicyResult.FailureDetails => {
  const out: { -readonly [K in keyof PolicyResult.FailureDetails]: PolicyResult.FailureDetails[K] } = {
    resultType: RESULT_CODES[fd.c],
    failedSessionCount: 1
  }
  if (fd.s !== undefined) out.sendingMtaIp = fd.s
  if (fd.n !== undefined) out.receivingMxHostname = fd.n
  if (fd.h !== undefined) out.receivingMxHelo = fd.h
  if (fd.r !== undefined) out.receivingIp = fd.r
  if (fd.a !== undefined) out.additionalInformation = fd.a
  if (fd.f !== undefined) out.failureReasonCode = fd.f
  return out
}

/** The row of one datagram received on `day` (see the module comment). */
export const toRow = (datagram: Datagram, day: Day.Day): Either.Either<NewResultRow, InvalidDatagram> =>
  Either.map(domainOf(datagram.d), (domain) => {
    const results: Array<PolicyResult.PolicyResult> = []
    for (const p of datagram.policies) {
      const failed = p.f === 1
      const details = p["failure-details"]
      results.push({
        policy: {
          policyType: POLICY_TYPES[p["policy-type"]],
          policyString: p["policy-string"] ?? EMPTY,
          policyDomain: p["policy-domain"] ?? datagram.d,
          mxHost: p["mx-host"] ?? EMPTY
        },
        summary: { totalSuccessfulSessionCount: failed ? 0 : 1, totalFailureSessionCount: failed ? 1 : 0 },
        failureDetails: details === undefined ? NO_DETAILS : details.map(detailOf)
      })
    }
    return { policyDomain: domain, day, recipientDomain: domain, isHost: false, sendReport: true, results }
  })

/** Policies whose `t` differs from the number of failure details (index list; empty when all agree). */
export const countMismatches = (datagram: Datagram): ReadonlyArray<number> => {
  const out: Array<number> = []
  datagram.policies.forEach((p, i) => {
    if (p.t !== undefined && p.t !== (p["failure-details"]?.length ?? 0)) out.push(i)
  })
  return out
}

/** What the receive path needs of a valid datagram: its row and the facts worth a log line. */
export interface Received {
  readonly row: NewResultRow
  readonly repaired: boolean
  /** `d` as sent. */
  readonly d: string
  readonly dpv: string | undefined
  /** Some policy's `t` differs from its number of failure details. */
  readonly countMismatch: boolean
}

/** `decode` then `toRow`: a valid datagram's row and facts, or why it is refused. */
export const receive = (bytes: Uint8Array, day: Day.Day): Either.Either<Received, InvalidDatagram> => {
  const { text, repaired } = textOf(bytes)
  const decoded = decodeText(text, repaired)
  if (Either.isLeft(decoded)) return Either.left(decoded.left)
  const { datagram } = decoded.right
  return Either.map(toRow(datagram, day), (row) => ({
    row,
    repaired,
    d: datagram.d,
    dpv: datagram.dpv,
    countMismatch: countMismatches(datagram).length > 0
  }))
}

const NOT_DEFINED = Either.left(
  new InvalidDatagram({ reason: "invalid", field: "", message: "repeat of a datagram number never given" })
)

/**
 * The datagrams the receiver thread numbered (DatagramRing.ts `DatagramInterner`: libtlsrpt sends
 * the same bytes for every delivery with the same outcome to a domain), each decoded once: `define`
 * decodes the first sight of a number, `repeat` gives its result again (no text, no parse), the row's
 * day set to the given one (rebuilt once per number and day). The one row serves every repeat: the
 * Collector copies what it keeps and changes nothing it is given.
 */
export const makeTable = () => {
  let entries: Array<Either.Either<Received, InvalidDatagram> | undefined> = []
  return {
    /** The first sight of datagram `id` (NOT_INTERNED, negative: a datagram that is not kept). */
    define: (id: number, bytes: Uint8Array, day: Day.Day): Either.Either<Received, InvalidDatagram> => {
      const r = receive(bytes, day)
      if (id >= 0) entries[id] = r
      return r
    },
    /** Datagram `id` again. */
    repeat: (id: number, day: Day.Day): Either.Either<Received, InvalidDatagram> => {
      const r = entries[id]
      if (r === undefined) return NOT_DEFINED
      if (Either.isLeft(r) || r.right.row.day === day) return r
      const moved = Either.right({ ...r.right, row: { ...r.right.row, day } })
      entries[id] = moved
      return moved
    },
    /** Every number is void (the thread's table was cleared). */
    forget: (): void => {
      entries = []
    }
  }
}
