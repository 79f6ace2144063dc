/**
 * Node's TLS errors as RFC 8460 result types and reason codes, after mox's `TLSFailureDetails`
 * (packages/outcome/README.md#mapping). Node reports certificate verification failures by
 * OpenSSL's X509_V_ERR names (`CERT_HAS_EXPIRED`, `DEPTH_ZERO_SELF_SIGNED_CERT`, …) either as the
 * handshake error's `code` (rejectUnauthorized) or as the socket's `authorizationError`, host name
 * mismatches as `ERR_TLS_CERT_ALTNAME_INVALID`, alerts as `ERR_SSL_…_ALERT_…` with "SSL alert number N".
 */
import type { PolicyResult } from "@tlsrpt/core"

export interface TlsFailure {
  readonly resultType: PolicyResult.ResultType
  /** `""` when mox gives none (RFC 8460 §4.3.2.1: the result type says it all). */
  readonly reasonCode: string
  /**
   * `certificate`: a verification finding (mox records it on the recipient-domain result only);
   * `handshake`: the TLS session itself failed.
   */
  readonly kind: "certificate" | "handshake"
}

const cert = (resultType: PolicyResult.ResultType, reasonCode = ""): TlsFailure => ({
  resultType,
  reasonCode,
  kind: "certificate"
})

/** OpenSSL verification codes (as Node names them) → mox's x509 classification. */
const VERIFICATION: ReadonlyMap<string, TlsFailure> = new Map([
  // x509 "Expired" covers "expired or not yet valid"
  ["CERT_HAS_EXPIRED", cert("certificate-expired")],
  ["CERT_NOT_YET_VALID", cert("certificate-expired")],
  ["ERR_TLS_CERT_ALTNAME_INVALID", cert("certificate-host-mismatch")],
  ["HOSTNAME_MISMATCH", cert("certificate-host-mismatch")],
  // x509 UnknownAuthorityError
  ["DEPTH_ZERO_SELF_SIGNED_CERT", cert("certificate-not-trusted")],
  ["SELF_SIGNED_CERT_IN_CHAIN", cert("certificate-not-trusted")],
  ["UNABLE_TO_GET_ISSUER_CERT", cert("certificate-not-trusted")],
  ["UNABLE_TO_GET_ISSUER_CERT_LOCALLY", cert("certificate-not-trusted")],
  ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", cert("certificate-not-trusted")],
  ["CERT_UNTRUSTED", cert("certificate-not-trusted")],
  // x509 CertificateInvalidError with a reason
  ["INVALID_CA", cert("certificate-not-trusted", "not-authorized-to-sign")],
  ["PATH_LENGTH_EXCEEDED", cert("certificate-not-trusted", "too-many-intermediates")],
  ["CERT_CHAIN_TOO_LONG", cert("certificate-not-trusted", "too-many-intermediates")],
  ["INVALID_PURPOSE", cert("certificate-not-trusted", "incompatible-key-usage")],
  ["PERMITTED_VIOLATION", cert("certificate-not-trusted", "ca-not-authorized-for-this-name")],
  ["EXCLUDED_VIOLATION", cert("certificate-not-trusted", "ca-not-authorized-for-this-name")],
  // other invalid-certificate reasons Go has no name for: the OpenSSL name, as mox does with Go's number
  ...[
    "CERT_SIGNATURE_FAILURE",
    "CERT_REJECTED",
    "CERT_REVOKED",
    "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
    "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
    "ERROR_IN_CERT_NOT_BEFORE_FIELD",
    "ERROR_IN_CERT_NOT_AFTER_FIELD",
    "KEYUSAGE_NO_CERTSIGN"
  ].map((code) => [code, cert("certificate-not-trusted", `node-x509-${dashed(code)}`)] as const)
])

/** Go's alert texts (crypto/tls/alert.go) with spaces as dashes, as mox's reason codes carry them. */
const ALERTS: ReadonlyMap<number, string> = new Map([
  [0, "close notify"],
  [10, "unexpected message"],
  [20, "bad record MAC"],
  [21, "decryption failed"],
  [22, "record overflow"],
  [30, "decompression failure"],
  [40, "handshake failure"],
  [42, "bad certificate"],
  [43, "unsupported certificate"],
  [44, "revoked certificate"],
  [45, "expired certificate"],
  [46, "unknown certificate"],
  [47, "illegal parameter"],
  [48, "unknown certificate authority"],
  [49, "access denied"],
  [50, "error decoding message"],
  [51, "error decrypting message"],
  [60, "export restriction"],
  [70, "protocol version not supported"],
  [71, "insufficient security level"],
  [80, "internal error"],
  [86, "inappropriate fallback"],
  [90, "user canceled"],
  [100, "no renegotiation"],
  [109, "missing extension"],
  [110, "unsupported extension"],
  [111, "certificate unobtainable"],
  [112, "unrecognized name"],
  [113, "bad certificate status response"],
  [114, "bad certificate hash value"],
  [115, "unknown PSK identity"],
  [116, "certificate required"],
  [120, "no application protocol"]
])

function dashed(s: string): string {
  return s.toLowerCase().replaceAll("_", "-")
}

/** `alert-<n>[-<name>]` as mox names an alert. */
export const alertName = (n: number): string => {
  const name = ALERTS.get(n)
  return name === undefined ? `alert-${n}` : `alert-${n}-${name.replaceAll(" ", "-")}`
}

const failure = (reasonCode: string): TlsFailure => ({
  resultType: "validation-failure",
  reasonCode,
  kind: "handshake"
})

/**
 * A certificate verification error code (the socket's `authorizationError`, or a handshake error's
 * code under rejectUnauthorized). An unknown code is mox's "other certificate verification error".
 */
export const fromVerificationCode = (code: string): TlsFailure =>
  VERIFICATION.get(code) ?? cert("validation-failure", "unknown-node-certificate-verification-error")

/** The facts Node and nodemailer put on an error (nodemailer keeps the socket's code as `originalCode`). */
interface ErrorFacts {
  readonly code?: unknown
  readonly originalCode?: unknown
  readonly message?: unknown
  readonly timeoutType?: unknown
}

const facts = (error: unknown): ErrorFacts => (typeof error === "object" && error !== null ? error : {})

const ALERT_NUMBER = /SSL alert number (\d+)/
const RECORD_HEADER = new Set([
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_SSL_PACKET_LENGTH_TOO_LONG",
  "ERR_SSL_HTTP_REQUEST",
  "ERR_SSL_RECORD_LENGTH_MISMATCH"
])
const CLOSED = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_SOCKET_CLOSED"])
const TIMEOUTS = new Set(["ETIMEDOUT", "ETIMEOUT", "ERR_SOCKET_CONNECTION_TIMEOUT"])

/**
 * Any error of a TLS handshake (or of the first read after it) → result type and reason (mox's
 * TLSFailureDetails): verification codes, alerts received (`tls-remote-alert-<n>-<name>`), a record
 * that is not TLS (`tls-record-header-error`), timeouts, closed connections; other OpenSSL errors are
 * failures on our side (`tls-local-error-<reason>`: Node does not tell which alert OpenSSL sent, so
 * mox's `tls-local-alert-<n>` cannot be given); anything else is `validation-failure` without reason.
 */
export const fromError = (error: unknown): TlsFailure => {
  const f = facts(error)
  const codes = [f.originalCode, f.code].filter((c): c is string => typeof c === "string")
  const message = typeof f.message === "string" ? f.message : ""
  for (const code of codes) {
    const v = VERIFICATION.get(code)
    if (v !== undefined) return v
  }
  for (const code of codes) {
    if (code.startsWith("ERR_SSL_") && code.includes("_ALERT_")) {
      const n = ALERT_NUMBER.exec(message)
      return failure(n === null ? "tls-remote-error" : `tls-remote-${alertName(Number(n[1]))}`)
    }
    if (RECORD_HEADER.has(code)) return failure("tls-record-header-error")
    if (CLOSED.has(code)) return failure("connection-closed-during-handshake")
    if (TIMEOUTS.has(code)) return failure("io-timeout-during-handshake")
  }
  if (f.timeoutType !== undefined) return failure("io-timeout-during-handshake")
  const ssl = codes.find((c) => c.startsWith("ERR_SSL_"))
  if (ssl !== undefined) return failure(`tls-local-error-${dashed(ssl.slice("ERR_SSL_".length))}`)
  if (/socket disconnected|connection closed/i.test(message)) return failure("connection-closed-during-handshake")
  return failure("")
}
