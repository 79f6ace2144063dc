/**
 * DANE-EE matching (RFC 7672 §3.1.1, RFC 6698 §2.1): whether the server's certificate matches a
 * TLSA record of usage 3. DANE-TA (usage 2) needs the chain validated up to the matching trust
 * anchor, which Node's TLS API does not offer; such records leave the answer to the caller.
 */
import { createHash, type X509Certificate } from "node:crypto"
import { isUsableTlsa } from "./PolicyInForce.js"

const digest = (matching: number, data: Buffer): string =>
  (matching === 1
    ? createHash("sha256").update(data).digest()
    : matching === 2
      ? createHash("sha512").update(data).digest()
      : data
  ).toString("hex")

/**
 * `true` when a usable usage-3 record matches the certificate, `false` when there are usage-3
 * records and none matches while no usage-2 record exists, `undefined` when only DANE-TA records
 * could decide.
 */
export const matchesEndEntity = (records: ReadonlyArray<string>, cert: X509Certificate): boolean | undefined => {
  const usable = records.filter(isUsableTlsa).map((r) => r.split(" "))
  const ee = usable.filter((r) => r[0] === "3")
  const spki = cert.publicKey.export({ type: "spki", format: "der" })
  for (const [, selector, matching, hex] of ee) {
    const data = selector === "1" ? spki : cert.raw
    if (digest(Number(matching), data) === (hex ?? "").toLowerCase()) return true
  }
  return ee.length > 0 && ee.length === usable.length ? false : undefined
}
