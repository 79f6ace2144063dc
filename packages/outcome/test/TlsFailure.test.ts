import { assert, describe, it } from "@effect/vitest"
import { PolicyResult } from "@tlsrpt/core"
import { FastCheck as fc, Schema } from "effect"
import { TlsFailure } from "../src/index.js"

const isResultType = Schema.is(PolicyResult.ResultType)
const err = (code: string, message = "", extra: object = {}) => Object.assign(new Error(message), { code, ...extra })

describe("TlsFailure.fromError (mox TLSFailureDetails on Node errors)", () => {
  const rows: ReadonlyArray<readonly [string, unknown, string, string, "certificate" | "handshake"]> = [
    ["expired", err("CERT_HAS_EXPIRED"), "certificate-expired", "", "certificate"],
    ["not yet valid", err("CERT_NOT_YET_VALID"), "certificate-expired", "", "certificate"],
    ["host name", err("ERR_TLS_CERT_ALTNAME_INVALID"), "certificate-host-mismatch", "", "certificate"],
    ["self-signed", err("DEPTH_ZERO_SELF_SIGNED_CERT"), "certificate-not-trusted", "", "certificate"],
    ["unknown issuer", err("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), "certificate-not-trusted", "", "certificate"],
    ["self-signed in chain", err("SELF_SIGNED_CERT_IN_CHAIN"), "certificate-not-trusted", "", "certificate"],
    ["invalid CA", err("INVALID_CA"), "certificate-not-trusted", "not-authorized-to-sign", "certificate"],
    ["path length", err("PATH_LENGTH_EXCEEDED"), "certificate-not-trusted", "too-many-intermediates", "certificate"],
    ["purpose", err("INVALID_PURPOSE"), "certificate-not-trusted", "incompatible-key-usage", "certificate"],
    ["revoked", err("CERT_REVOKED"), "certificate-not-trusted", "node-x509-cert-revoked", "certificate"],
    [
      "alert received",
      err("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", "tlsv1 alert unknown ca:...:SSL alert number 48"),
      "validation-failure",
      "tls-remote-alert-48-unknown-certificate-authority",
      "handshake"
    ],
    [
      "alert without number",
      err("ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE"),
      "validation-failure",
      "tls-remote-error",
      "handshake"
    ],
    [
      "plaintext answer",
      err("ERR_SSL_WRONG_VERSION_NUMBER"),
      "validation-failure",
      "tls-record-header-error",
      "handshake"
    ],
    ["reset", err("ECONNRESET"), "validation-failure", "connection-closed-during-handshake", "handshake"],
    [
      "nodemailer timeout",
      err("ETIMEDOUT", "TLS handshake timed out", { timeoutType: "UPGRADE_TIMEOUT" }),
      "validation-failure",
      "io-timeout-during-handshake",
      "handshake"
    ],
    [
      "nodemailer wraps the socket's code",
      err("ESOCKET", "certificate has expired", { originalCode: "CERT_HAS_EXPIRED" }),
      "certificate-expired",
      "",
      "certificate"
    ],
    [
      "local OpenSSL error",
      err("ERR_SSL_UNSUPPORTED_PROTOCOL"),
      "validation-failure",
      "tls-local-error-unsupported-protocol",
      "handshake"
    ],
    ["anything else", new Error("boom"), "validation-failure", "", "handshake"]
  ]
  for (const [name, error, resultType, reasonCode, kind] of rows) {
    it(name, () => assert.deepStrictEqual(TlsFailure.fromError(error), { resultType, reasonCode, kind }))
  }

  it.prop(
    "any error value gives an IANA result type and a reason without CR/LF",
    [fc.anything(), fc.string(), fc.string()],
    ([value, code, message]) => {
      for (const e of [value, err(code, message), { originalCode: code, message }]) {
        const f = TlsFailure.fromError(e)
        assert.isTrue(isResultType(f.resultType))
        assert.notMatch(f.reasonCode, /[\r\n]/)
      }
    }
  )

  it.prop("alert numbers: named when known, `alert-<n>` otherwise", [fc.integer({ min: 0, max: 255 })], ([n]) => {
    const name = TlsFailure.alertName(n)
    assert.match(name, new RegExp(`^alert-${n}(-[A-Za-z-]+)?$`))
    const f = TlsFailure.fromError(err("ERR_SSL_SSLV3_ALERT_X", `SSL alert number ${n}`))
    assert.strictEqual(f.reasonCode, `tls-remote-${name}`)
  })

  it("an unknown verification code is a validation failure of the certificate", () =>
    assert.deepStrictEqual(TlsFailure.fromVerificationCode("SOMETHING_NEW"), {
      resultType: "validation-failure",
      reasonCode: "unknown-node-certificate-verification-error",
      kind: "certificate"
    }))
})
