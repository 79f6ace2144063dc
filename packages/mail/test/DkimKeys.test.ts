import { createPublicKey, generateKeyPairSync } from "node:crypto"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import {
  type DkimKeyError,
  type DkimKeySpec,
  dkimDnsName,
  dkimKeyFromPem,
  generateDkimKeyPair,
  loadDkimKeys
} from "../src/DkimKeys.js"

const pkcs8 = { type: "pkcs8", format: "pem" } as const
const spki = { type: "spki", format: "pem" } as const

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "tlsrpt-dkim-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const write = (dir: string, name: string, content: string) =>
  Effect.promise(async () => {
    const file = join(dir, name)
    await writeFile(file, content)
    return file
  })

const failure = <A>(effect: Effect.Effect<A, DkimKeyError>) => Effect.flip(effect)

const tags = (record: string): Record<string, string> =>
  Object.fromEntries(
    record.split(";").map((t) => {
      const i = t.indexOf("=")
      return [t.slice(0, i).trim(), t.slice(i + 1).trim()]
    })
  )

describe("loadDkimKeys", () => {
  it.scoped("loads RSA-2048 and Ed25519 keys", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const rsa = yield* generateDkimKeyPair("rsa-sha256")
      const ed = yield* generateDkimKeyPair("ed25519-sha256")
      const specs: ReadonlyArray<DkimKeySpec> = [
        {
          domain: "☺.example",
          selector: "r1",
          algorithm: "rsa-sha256",
          privateKeyFile: yield* write(dir, "r.pem", rsa.privateKeyPem)
        },
        {
          domain: "mox.example",
          selector: "e1",
          algorithm: "ed25519-sha256",
          privateKeyFile: yield* write(dir, "e.pem", ed.privateKeyPem)
        }
      ]
      const keys = yield* loadDkimKeys(specs)
      assert.deepStrictEqual(
        keys.map((k) => [k.domain.ascii, k.selector, k.algorithm, dkimDnsName(k)]),
        [
          ["xn--74h.example", "r1", "rsa-sha256", "r1._domainkey.xn--74h.example"],
          ["mox.example", "e1", "ed25519-sha256", "e1._domainkey.mox.example"]
        ]
      )
      assert.strictEqual(keys[0]!.privateKeyPem, rsa.privateKeyPem)
    })
  )

  it.scoped("refuses an RSA key under 2048 bits, naming the file", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const weak = generateKeyPairSync("rsa", {
        modulusLength: 1024,
        privateKeyEncoding: pkcs8,
        publicKeyEncoding: spki
      })
      const file = yield* write(dir, "weak.pem", weak.privateKey)
      const e = yield* failure(
        loadDkimKeys([{ domain: "mox.example", selector: "weak", algorithm: "rsa-sha256", privateKeyFile: file }])
      )
      assert.strictEqual(e._tag, "DkimKeyError")
      assert.strictEqual(e.file, file)
      assert.strictEqual(e.selector, "weak")
      assert.include(e.reason, "1024 bits")
      assert.include(e.message, file)
    })
  )

  it.effect("refuses an unreadable file, naming it", () =>
    Effect.gen(function* () {
      const file = join(tmpdir(), "tlsrpt-no-such-dir", "missing.pem")
      const e = yield* failure(
        loadDkimKeys([{ domain: "mox.example", selector: "s", algorithm: "ed25519-sha256", privateKeyFile: file }])
      )
      assert.strictEqual(e.file, file)
      assert.include(e.reason, "cannot read")
    })
  )

  it.scoped("refuses a key of the wrong type, a public key and garbage", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const ed = yield* generateDkimKeyPair("ed25519-sha256")
      const edFile = yield* write(dir, "ed.pem", ed.privateKeyPem)
      const wrong = yield* failure(
        loadDkimKeys([{ domain: "mox.example", selector: "s", algorithm: "rsa-sha256", privateKeyFile: edFile }])
      )
      assert.include(wrong.reason, "key type ed25519 does not match algorithm rsa-sha256")
      const pub = createPublicKey(ed.privateKeyPem).export(spki) as string
      const pubFile = yield* write(dir, "pub.pem", pub)
      const notPrivate = yield* failure(
        loadDkimKeys([{ domain: "mox.example", selector: "s", algorithm: "ed25519-sha256", privateKeyFile: pubFile }])
      )
      assert.strictEqual(notPrivate.file, pubFile)
      assert.include(notPrivate.reason, "not a PEM private key")
      const junkFile = yield* write(dir, "junk.pem", "hello")
      const junk = yield* failure(
        loadDkimKeys([{ domain: "mox.example", selector: "s", algorithm: "ed25519-sha256", privateKeyFile: junkFile }])
      )
      assert.strictEqual(junk.file, junkFile)
    })
  )

  it.effect("refuses an invalid selector or domain", () =>
    Effect.gen(function* () {
      const ed = yield* generateDkimKeyPair("ed25519-sha256")
      const base = { algorithm: "ed25519-sha256", privateKeyPem: ed.privateKeyPem, file: "<test>" } as const
      const badSelector = dkimKeyFromPem({ ...base, domain: "mox.example", selector: "a b" })
      assert.isTrue(Either.isLeft(badSelector))
      const badDomain = dkimKeyFromPem({ ...base, domain: "not a domain", selector: "s" })
      assert.isTrue(Either.isLeft(badDomain))
      assert.isTrue(Either.isRight(dkimKeyFromPem({ ...base, domain: "mox.example", selector: "2024.tlsrpt" })))
    })
  )
})

describe("generateDkimKeyPair", () => {
  it.effect("Ed25519: p= is the raw 32-byte public key (RFC 8463 §4.2)", () =>
    Effect.gen(function* () {
      const { privateKeyPem, dnsRecord } = yield* generateDkimKeyPair("ed25519-sha256")
      const t = tags(dnsRecord)
      assert.deepStrictEqual([t.v, t.k, t.s], ["DKIM1", "ed25519", "email:tlsrpt"])
      const raw = Buffer.from(t.p!, "base64")
      assert.strictEqual(raw.length, 32)
      const der = createPublicKey(privateKeyPem).export({ type: "spki", format: "der" })
      assert.isTrue(der.subarray(der.length - 32).equals(raw))
    })
  )

  it.effect("RSA: 2048 bits, p= is the SubjectPublicKeyInfo (RFC 6376 §3.6.1)", () =>
    Effect.gen(function* () {
      const { privateKeyPem, dnsRecord } = yield* generateDkimKeyPair("rsa-sha256")
      const t = tags(dnsRecord)
      assert.deepStrictEqual([t.v, t.k, t.s], ["DKIM1", "rsa", "email:tlsrpt"])
      const pub = createPublicKey({ key: Buffer.from(t.p!, "base64"), format: "der", type: "spki" })
      assert.strictEqual(pub.asymmetricKeyDetails?.modulusLength, 2048)
      assert.strictEqual(pub.export(spki) as string, createPublicKey(privateKeyPem).export(spki) as string)
      assert.isTrue(
        Either.isRight(
          dkimKeyFromPem({ domain: "mox.example", selector: "s", algorithm: "rsa-sha256", privateKeyPem, file: "-" })
        )
      )
    })
  )
})

/**
 * How receivers judge a key record's `s=` (docs/design.md#dkim-service-type). mailauth, which signs and
 * verifies in our tests, does not look at `s=`, so the rules are written out here.
 */
const serviceTypes = (record: string): ReadonlyArray<string> | undefined =>
  tags(record)
    .s?.split(":")
    .map((x) => x.trim().toLowerCase())

/** RFC 6376 §3.6.1 as mox applies it (dkim.ErrKeyNotForEmail): absent, or `email` or `*` in the list. */
const moxAccepts = (record: string) => {
  const s = serviceTypes(record)
  return s === undefined || s.includes("email") || s.includes("*")
}

/** RFC 8460 §5.3: a receiver may ignore a report whose key does not declare the `tlsrpt` service type. */
const rfc8460Accepts = (record: string) => serviceTypes(record)?.includes("tlsrpt") === true

/** dkimpy 1.0.x (Debian): `s=` compared as one whole value against `*`, `email` (and `tlsrpt`). */
const dkimpyAccepts = (record: string) => {
  const s = tags(record).s
  return s === undefined || s === "*" || s === "email" || s === "tlsrpt"
}

describe("the printed DKIM key record against receivers' s= rules (docs/design.md#dkim-service-type)", () => {
  it.effect("s=email:tlsrpt passes mox's and RFC 8460's rules; only a whole-value comparison refuses it", () =>
    Effect.gen(function* () {
      for (const algorithm of ["rsa-sha256", "ed25519-sha256"] as const) {
        const { dnsRecord } = yield* generateDkimKeyPair(algorithm)
        assert.isTrue(moxAccepts(dnsRecord), dnsRecord)
        assert.isTrue(rfc8460Accepts(dnsRecord), dnsRecord)
        assert.isFalse(dkimpyAccepts(dnsRecord), dnsRecord)
      }
    })
  )

  it("the alternatives each fail a rule too: s=tlsrpt fails mox (and every email verifier), no s= fails RFC 8460", () => {
    const onlyTlsrpt = "v=DKIM1; k=rsa; s=tlsrpt; p=AAAA"
    const none = "v=DKIM1; k=rsa; p=AAAA"
    assert.deepStrictEqual(
      [moxAccepts(onlyTlsrpt), rfc8460Accepts(onlyTlsrpt), dkimpyAccepts(onlyTlsrpt)],
      [false, true, true]
    )
    assert.deepStrictEqual([moxAccepts(none), rfc8460Accepts(none), dkimpyAccepts(none)], [true, false, true])
  })
})
