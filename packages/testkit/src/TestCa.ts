/**
 * A certificate authority made at test time (the `openssl` CLI: node:crypto can sign but not build
 * X.509 certificates), and leaf certificates from it: valid, expired, for another name, or from a CA
 * nobody trusts. Keys are P-256 (fast to make). Files live in a scoped temporary directory.
 */
import { execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, type Scope } from "effect"

export interface Leaf {
  readonly key: string
  /** The leaf certificate (PEM). */
  readonly cert: string
}

export interface TestCa {
  /** The CA certificate (PEM): what a client trusts. */
  readonly ca: string
  /**
   * A leaf for these DNS names, signed by this CA; `days: -1` makes one that expired (notAfter before
   * now), `selfSigned` one signed by a throw-away CA that is not trusted.
   */
  readonly leaf: (
    names: ReadonlyArray<string>,
    options?: { readonly days?: number; readonly untrusted?: boolean }
  ) => Effect.Effect<Leaf>
}

const openssl = (dir: string, args: ReadonlyArray<string>) =>
  Effect.async<void>((resume) => {
    execFile("openssl", [...args], { cwd: dir }, (err, _stdout, stderr) =>
      resume(err ? Effect.dieMessage(`openssl ${args[0]}: ${stderr || err.message}`) : Effect.void)
    )
  })

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

const makeCa = (dir: string, name: string) =>
  openssl(dir, [
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-subj",
    `/CN=${name}`,
    "-days",
    "2"
  ])

/** Makes a CA in a temporary directory removed when the scope closes. */
export const make = (): Effect.Effect<TestCa, never, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "tlsrpt-ca-"))),
      (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
    )
    yield* makeCa(dir, "ca")
    yield* makeCa(dir, "rogue")
    const read = (f: string) => Effect.promise(() => readFile(join(dir, f), "utf8"))
    let n = 0
    const leaf: TestCa["leaf"] = (names, options) =>
      Effect.gen(function* () {
        const id = `leaf${n++}`
        const issuer = options?.untrusted ? "rogue" : "ca"
        yield* Effect.promise(() =>
          writeFile(join(dir, `${id}.ext`), `subjectAltName=${names.map((d) => `DNS:${d}`).join(",")}\n`)
        )
        yield* openssl(dir, ["req", ...EC, "-keyout", `${id}.key`, "-out", `${id}.csr`, "-subj", `/CN=${names[0]}`])
        yield* openssl(dir, [
          "x509",
          "-req",
          "-in",
          `${id}.csr`,
          "-CA",
          `${issuer}.pem`,
          "-CAkey",
          `${issuer}.key`,
          "-CAcreateserial",
          "-out",
          `${id}.pem`,
          "-days",
          String(options?.days ?? 1),
          "-extfile",
          `${id}.ext`
        ])
        return { key: yield* read(`${id}.key`), cert: yield* read(`${id}.pem`) }
      })
    return { ca: yield* read("ca.pem"), leaf }
  })
