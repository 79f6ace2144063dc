/**
 * `tlsrpt init --domain D`: writes a config file and a DKIM key pair, and returns the DNS records to
 * publish: the DKIM key (`s=email:tlsrpt`, docs/design.md#dkim-service-type) and a TLSRPT record for the host (RFC 8460 §3) so
 * reports about our own mail host come back to it.
 */
import * as NodePath from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import { Domain } from "@tlsrpt/core"
import { type DkimAlgorithm, generateDkimKeyPair } from "@tlsrpt/mail"
import { Data, Effect, Either } from "effect"
import { type ConfigFileJson, DEFAULT_LISTEN, isSelector, SELECTOR_EXPECTED } from "./Config.js"
import { generateToken } from "./Admin.js"

export class InitError extends Data.TaggedError("InitError")<{ readonly reason: string }> {
  override get message(): string {
    return `init: ${this.reason}`
  }
}

export interface InitOptions {
  readonly domain: string
  /** Where the config goes (absolute). */
  readonly configFile: string
  readonly selector: string
  readonly algorithm: DkimAlgorithm
  readonly force: boolean
}

export interface InitResult {
  readonly configFile: string
  readonly keyFile: string
  /** Zone-file lines. */
  readonly records: ReadonlyArray<string>
}

/** A TXT value as zone-file character-strings of at most 255 octets each (RFC 1035 §3.3). */
export const zoneTxt = (value: string): string => {
  const parts: Array<string> = []
  for (let i = 0; i < value.length; i += 255) parts.push(value.slice(i, i + 255))
  return parts.map((p) => `"${p.replace(/["\\]/g, "\\$&")}"`).join(" ")
}

export const run = (options: InitOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const parsed = Domain.parse(options.domain)
    if (Either.isLeft(parsed)) return yield* new InitError({ reason: `--domain: ${parsed.left.message}` })
    const domain = parsed.right.ascii
    if (!isSelector(options.selector))
      return yield* new InitError({
        reason: `--selector: ${SELECTOR_EXPECTED}, got ${JSON.stringify(options.selector)}`
      })
    const dir = NodePath.dirname(options.configFile)
    const keyName = `${options.selector}.${domain}.${options.algorithm === "rsa-sha256" ? "rsa" : "ed25519"}.pem`
    const keyFile = NodePath.join(dir, "dkim", keyName)

    for (const file of [options.configFile, keyFile]) {
      if (!options.force && (yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false))))
        return yield* new InitError({ reason: `${file} exists; use --force to overwrite` })
    }

    const pair = yield* generateDkimKeyPair(options.algorithm)
    const rua = `mailto:tlsrpt@${domain}`
    const config: ConfigFileJson = {
      dataDir: "data",
      submitter: {
        domain,
        organizationName: domain,
        contactInfo: `postmaster@${domain}`,
        from: `postmaster@${domain}`
      },
      dkim: [
        {
          domain,
          selector: options.selector,
          privateKeyFile: NodePath.relative(dir, keyFile),
          algorithm: options.algorithm
        }
      ],
      reports: { enabled: true, forAllSuccess: false, https: true },
      http: { listen: `${DEFAULT_LISTEN.host}:${DEFAULT_LISTEN.port}`, token: generateToken() }
    }
    const write = (file: string, text: string, mode: number) =>
      fs.makeDirectory(NodePath.dirname(file), { recursive: true }).pipe(
        Effect.zipRight(fs.writeFileString(file, text, { mode })),
        // writeFile keeps an existing file's mode: set it explicitly (the key and the token are secrets).
        Effect.zipRight(fs.chmod(file, mode)),
        Effect.mapError((e) => new InitError({ reason: `cannot write ${file}: ${e.message}` }))
      )
    yield* write(keyFile, pair.privateKeyPem, 0o600)
    yield* write(options.configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600)

    const records = [
      `${options.selector}._domainkey.${domain}. IN TXT ${zoneTxt(pair.dnsRecord)}`,
      `_smtp._tls.${domain}. IN TXT ${zoneTxt(`v=TLSRPTv1; rua=${rua}`)}`
    ]
    return { configFile: options.configFile, keyFile, records } satisfies InitResult
  })
