/**
 * The policies in force for one delivery attempt: the recipient domain's MTA-STS state (RFC 8461)
 * and the MX host's DANE state (RFC 7672). `MtaSts.policyFor` gives the first; the MTA's DNSSEC
 * resolver gives the second.
 */
import type { PolicyResult } from "@tlsrpt/core"
import { validateMx } from "mailauth/lib/mta-sts.js"

/** A failure detail found while getting a policy (result type and reason code). */
export interface PolicyFailure {
  readonly resultType: PolicyResult.ResultType
  readonly reasonCode: string
}

/** An MTA-STS policy in mode testing or enforce, as served. */
export interface StsPolicyText {
  readonly mode: "testing" | "enforce"
  /** The policy file's lines (→ `policy-string`). */
  readonly lines: ReadonlyArray<string>
  /** The `mx:` patterns (→ `mx-host`). */
  readonly mx: ReadonlyArray<string>
}

export type StsState =
  /** No `_mta-sts` record, or a policy in mode none: the recipient result is `no-policy-found`. */
  | { readonly _tag: "None" }
  /** A policy in force; `failure` when it is a cached policy used because refreshing it failed. */
  | { readonly _tag: "Policy"; readonly policy: StsPolicyText; readonly failure?: PolicyFailure | undefined }
  /** A record exists but no policy could be had: an `sts` result with empty policy and this detail. */
  | { readonly _tag: "Failed"; readonly failure: PolicyFailure }

export type DaneState =
  /** No DANE: the host result is `no-policy-found`. */
  | { readonly _tag: "None" }
  | {
      readonly _tag: "Tlsa"
      /** Presentation form `<usage> <selector> <matching type> <hex>`. */
      readonly records: ReadonlyArray<string>
      /** The TLSA base domain: the MX host, or its DNSSEC-secure CNAME target with TLSA records. */
      readonly baseDomain: string
      /** Records that were not DNSSEC-validated are no policy (RFC 7672 §2.2). */
      readonly dnssecValidated: boolean
      /** Whether the server's certificate matched a usable record (see `Dane.matches`); unset if not checked. */
      readonly matched?: boolean | undefined
    }

export const noSts: StsState = { _tag: "None" }
export const noDane: DaneState = { _tag: "None" }

/** RFC 7672 §3.1.3: only DANE-TA(2) and DANE-EE(3) are usable for SMTP, with known selector and matching type. */
export const isUsableTlsa = (record: string): boolean => {
  const [usage, selector, matching] = record.split(" ").map(Number)
  return (usage === 2 || usage === 3) && (selector === 0 || selector === 1) && matching !== undefined && matching <= 2
}

/**
 * Whether an MX host matches the policy's `mx:` patterns (RFC 8461 §4.1). mailauth's `validateMx`
 * matches a wildcard as a suffix; the RFC lets `*` stand for exactly one label, so a deeper host is
 * refused here.
 */
export const mxMatches = (mxHost: string, policy: StsPolicyText): boolean => {
  const host = mxHost.toLowerCase().replace(/\.$/, "")
  const result = validateMx(host, { mode: policy.mode, mx: [...policy.mx] })
  if (!result.valid) return false
  const match = result.match
  if (match === undefined || !match.startsWith(".")) return true
  return !host.slice(0, host.length - match.length).includes(".")
}
