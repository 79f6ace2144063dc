/**
 * DKIM signing keys for report mail (RFC 8460 §5.3: reports sent by mail MUST be DKIM-signed by the
 * submitter domain). RSA-SHA256 (RFC 6376) and Ed25519-SHA256 (RFC 8463) selectors; both may sign
 * (docs/design.md#two-dkim-algorithms). Keys are checked when loaded so a bad key stops start-up, naming its file.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto"
import { readFile } from "node:fs/promises"
import { Domain } from "@tlsrpt/core"
import { Data, Effect, Either } from "effect"

export type DkimAlgorithm = "rsa-sha256" | "ed25519-sha256"

export interface DkimKey {
  readonly domain: Domain.Domain
  readonly selector: string
  readonly algorithm: DkimAlgorithm
  readonly privateKeyPem: string
}

export interface DkimKeySpec {
  readonly domain: string
  readonly selector: string
  readonly privateKeyFile: string
  readonly algorithm: DkimAlgorithm
}

export class DkimKeyError extends Data.TaggedError("DkimKeyError")<{
  readonly file: string
  readonly selector: string
  readonly reason: string
}> {
  override get message(): string {
    return `DKIM key ${this.file} (selector ${this.selector}): ${this.reason}`
  }
}

/** RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits; we require 2048 (its SHOULD). */
export const MIN_RSA_BITS = 2048

// RFC 6376 §3.1: a selector is a dot-separated sequence of sub-domain labels.
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

const keyType = (algorithm: DkimAlgorithm): "rsa" | "ed25519" => (algorithm === "rsa-sha256" ? "rsa" : "ed25519")

/**
 * Checks a PEM private key against its declared algorithm. `file` only labels the error (use a
 * description such as `<inline>` for keys that did not come from a file).
 */
export const dkimKeyFromPem = (input: {
  readonly domain: string
  readonly selector: string
  readonly algorithm: DkimAlgorithm
  readonly privateKeyPem: string
  readonly file: string
}): Either.Either<DkimKey, DkimKeyError> => {
  const fail = (reason: string) => Either.left(new DkimKeyError({ file: input.file, selector: input.selector, reason }))
  const domain = Domain.parse(input.domain)
  if (Either.isLeft(domain)) return fail(`invalid domain ${JSON.stringify(input.domain)}: ${domain.left.reason}`)
  if (!SELECTOR.test(input.selector)) return fail("invalid selector (RFC 6376 §3.1)")
  if (input.algorithm !== "rsa-sha256" && input.algorithm !== "ed25519-sha256") {
    return fail(`unsupported algorithm ${JSON.stringify(input.algorithm)}`)
  }
  let key: KeyObject
  try {
    key = createPrivateKey({ key: input.privateKeyPem, format: "pem" })
  } catch (e) {
    return fail(`not a PEM private key: ${(e as Error).message}`)
  }
  const want = keyType(input.algorithm)
  if (key.asymmetricKeyType !== want) {
    return fail(`key type ${key.asymmetricKeyType ?? "unknown"} does not match algorithm ${input.algorithm}`)
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (want === "rsa" && bits < MIN_RSA_BITS) return fail(`RSA key of ${bits} bits; at least ${MIN_RSA_BITS} required`)
  return Either.right({
    domain: domain.right,
    selector: input.selector,
    algorithm: input.algorithm,
    privateKeyPem: input.privateKeyPem
  })
}

/** Reads and checks every configured key; the first bad one fails with its file name. */
export const loadDkimKeys = (specs: ReadonlyArray<DkimKeySpec>): Effect.Effect<ReadonlyArray<DkimKey>, DkimKeyError> =>
  Effect.forEach(specs, (spec) =>
    Effect.tryPromise({
      try: () => readFile(spec.privateKeyFile, "utf8"),
      catch: (e) =>
        new DkimKeyError({
          file: spec.privateKeyFile,
          selector: spec.selector,
          reason: `cannot read: ${(e as Error).message}`
        })
    }).pipe(
      Effect.flatMap((privateKeyPem) =>
        dkimKeyFromPem({
          domain: spec.domain,
          selector: spec.selector,
          algorithm: spec.algorithm,
          privateKeyPem,
          file: spec.privateKeyFile
        })
      )
    )
  )

/**
 * The `p=` value of the key record: for RSA the DER SubjectPublicKeyInfo (RFC 6376 §3.6.1), for
 * Ed25519 the raw 32-byte public key (RFC 8463 §4.2), base64.
 */
const publicKeyValue = (key: KeyObject): string => {
  const spki = createPublicKey(key).export({ format: "der", type: "spki" })
  return (key.asymmetricKeyType === "ed25519" ? spki.subarray(spki.length - 32) : spki).toString("base64")
}

/**
 * The TXT record to publish at `<selector>._domainkey.<domain>`, with `s=email:tlsrpt`: RFC 6376
 * §3.6.1 email verifiers (mox among them) ignore a key whose service list has neither `email` nor `*`,
 * and RFC 8460 §5.3 lets a receiver ignore a key without `tlsrpt`; the list satisfies both
 * (docs/design.md#dkim-service-type, where the one verifier that refuses a list is named).
 */
export const dkimDnsRecord = (privateKeyPem: string): string => {
  const key = createPrivateKey({ key: privateKeyPem, format: "pem" })
  const k = key.asymmetricKeyType === "ed25519" ? "ed25519" : "rsa"
  return `v=DKIM1; k=${k}; s=email:tlsrpt; p=${publicKeyValue(key)}`
}

/** The DNS name of a key's record, `<selector>._domainkey.<domain A-label>` (RFC 6376 §3.6.2.1). */
export const dkimDnsName = (key: DkimKey): string => `${key.selector}._domainkey.${key.domain.ascii}`

/** A new key pair for `init`: RSA 2048 bits or Ed25519, with the DNS record to publish. */
export const generateDkimKeyPair = (
  algorithm: DkimAlgorithm
): Effect.Effect<{ readonly privateKeyPem: string; readonly dnsRecord: string }> =>
  Effect.async<string>((resume) => {
    const done = (err: Error | null, privateKeyPem: string) =>
      resume(err === null ? Effect.succeed(privateKeyPem) : Effect.die(err))
    const publicKeyEncoding = { type: "spki", format: "pem" } as const
    const privateKeyEncoding = { type: "pkcs8", format: "pem" } as const
    if (algorithm === "rsa-sha256") {
      generateKeyPair("rsa", { modulusLength: MIN_RSA_BITS, publicKeyEncoding, privateKeyEncoding }, (err, _, key) =>
        done(err, key)
      )
    } else {
      generateKeyPair("ed25519", { publicKeyEncoding, privateKeyEncoding }, (err, _, key) => done(err, key))
    }
  }).pipe(Effect.map((privateKeyPem) => ({ privateKeyPem, dnsRecord: dkimDnsRecord(privateKeyPem) })))
