/**
 * MTA-STS policies (RFC 8461) for the recipient domains an MTA delivers to, fetched and cached, and
 * their failures as RFC 8460 details (`sts-policy-fetch-error`, `sts-policy-invalid`,
 * `sts-webpki-invalid`, with mox's reason codes).
 *
 * mailauth's MTA-STS module does the record lookup (`resolvePolicy`), the policy parsing
 * (`parsePolicy`) and the MX matching (`validateMx`). The HTTPS fetch is ours: mailauth's
 * `fetchPolicy` always connects to port 443 with the process-wide CA store and turns a missing host
 * into "no policy", so it can neither be tested on loopback with a test CA nor tell a 404 from a
 * refused connection, which RFC 8460 reports differently.
 */
import * as https from "node:https"
import type { LookupFunction } from "node:net"
import { promises as dnsPromises } from "node:dns"
import { Clock, Context, Duration, Effect, Layer, Ref } from "effect"
import { parsePolicy, resolvePolicy } from "mailauth/lib/mta-sts.js"
import { noSts, type PolicyFailure, type StsPolicyText, type StsState } from "./PolicyInForce.js"
import * as TlsFailure from "./TlsFailure.js"

export interface MtaStsConfig {
  /** DNS servers (`host:port`) for the `_mta-sts` TXT lookup; default: the system's resolvers. */
  readonly dnsServers?: ReadonlyArray<string> | undefined
  /** Port of the policy host; RFC 8461 §3.3 says 443, tests use an ephemeral one. */
  readonly port?: number | undefined
  /** Trusted CAs (PEM) for the policy host; default: Node's bundled roots. */
  readonly ca?: string | ReadonlyArray<string> | undefined
  /** How the policy host name is resolved (default: the system's). */
  readonly lookup?: LookupFunction | undefined
  /** Per fetch (RFC 8461 §3.3 suggests a timeout); default 15 seconds, mailauth's. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** RFC 8461 §3.3: a policy larger than 64 KiB is refused. */
const MAX_POLICY_BYTES = 64 * 1024

interface Cached {
  readonly id: string
  readonly state: StsState
  readonly expiresAt: number
}

type Fetched =
  | { readonly _tag: "Ok"; readonly body: string }
  | { readonly _tag: "Failed"; readonly failure: PolicyFailure }

const fetchFailure = (reasonCode: string): PolicyFailure => ({ resultType: "sts-policy-fetch-error", reasonCode })

/** A certificate problem of the policy host → sts-webpki-invalid with mox's `<result-type>[+<reason>]`. */
const classifyFetchError = (error: unknown): PolicyFailure => {
  const f = TlsFailure.fromError(error)
  if (f.kind === "certificate")
    return {
      resultType: "sts-webpki-invalid",
      reasonCode: f.reasonCode === "" ? f.resultType : `${f.resultType}+${f.reasonCode}`
    }
  return fetchFailure("cannot-fetch-policy")
}

const fetchPolicyText = (domain: string, config: MtaStsConfig): Effect.Effect<Fetched> =>
  Effect.async<Fetched>((resume) => {
    const host = `mta-sts.${domain}`
    const ca = config.ca === undefined ? undefined : typeof config.ca === "string" ? config.ca : [...config.ca]
    const req = https.get(
      {
        host,
        servername: host,
        port: config.port ?? 443,
        path: "/.well-known/mta-sts.txt",
        timeout: Duration.toMillis(config.timeout ?? "15 seconds"),
        ...(ca === undefined ? {} : { ca }),
        ...(config.lookup === undefined ? {} : { lookup: config.lookup }),
        agent: false
      },
      (res) => {
        // RFC 8461 §3.3: redirects are not followed; mox calls a 404 "no policy served".
        if (res.statusCode !== 200) {
          res.resume()
          return resume(
            Effect.succeed({
              _tag: "Failed",
              failure: fetchFailure(res.statusCode === 404 ? "no-policy-served" : "cannot-fetch-policy")
            })
          )
        }
        const chunks: Array<Buffer> = []
        let size = 0
        res.on("data", (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_POLICY_BYTES) {
            res.destroy()
            resume(
              Effect.succeed({
                _tag: "Failed",
                failure: { resultType: "sts-policy-invalid", reasonCode: "policy-syntax-error" }
              })
            )
          } else chunks.push(chunk)
        })
        res.on("end", () => resume(Effect.succeed({ _tag: "Ok", body: Buffer.concat(chunks).toString("utf8") })))
        res.on("error", (e) => resume(Effect.succeed({ _tag: "Failed", failure: classifyFetchError(e) })))
      }
    )
    req.on("timeout", () => req.destroy(Object.assign(new Error("policy fetch timed out"), { code: "ETIMEDOUT" })))
    req.on("error", (e) => resume(Effect.succeed({ _tag: "Failed", failure: classifyFetchError(e) })))
    return Effect.sync(() => req.destroy())
  })

/** The policy file → the state it puts in force (mode none is no policy, RFC 8461 §5). */
const parse = (body: string): { readonly state: StsState; readonly maxAge: number } | PolicyFailure => {
  try {
    const p = parsePolicy(body)
    const lines = body
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== "")
    const maxAge = p.maxAge ?? 0
    if (p.mode === "none") return { state: noSts, maxAge }
    const policy: StsPolicyText = { mode: p.mode, lines, mx: p.mx ?? [] }
    return { state: { _tag: "Policy", policy }, maxAge }
  } catch {
    return { resultType: "sts-policy-invalid", reasonCode: "policy-syntax-error" }
  }
}

const withFallback = (cached: Cached | undefined, failure: PolicyFailure): StsState => {
  if (cached === undefined) return { _tag: "Failed", failure }
  // mox: the cached policy stays in force; the suffix only when it is not mode none.
  if (cached.state._tag !== "Policy") return cached.state
  return {
    _tag: "Policy",
    policy: cached.state.policy,
    failure: { ...failure, reasonCode: `${failure.reasonCode}+fallback-to-cached-policy` }
  }
}

export interface MtaStsService {
  /** The MTA-STS state for a recipient domain (A-label); never fails: failures are part of the state. */
  readonly policyFor: (domain: string) => Effect.Effect<StsState>
}

export class MtaSts extends Context.Tag("@tlsrpt/outcome/MtaSts")<MtaSts, MtaStsService>() {
  /** Fetches policies over HTTPS and caches them for their max_age, keyed by the record's id (RFC 8461 §5.1). */
  static readonly layer = (config: MtaStsConfig = {}): Layer.Layer<MtaSts> => Layer.effect(MtaSts, make(config))
}

export const make = (config: MtaStsConfig = {}): Effect.Effect<MtaStsService> =>
  Effect.gen(function* () {
    const cache = yield* Ref.make(new Map<string, Cached>())
    const resolver = new dnsPromises.Resolver()
    if (config.dnsServers !== undefined) resolver.setServers([...config.dnsServers])
    const resolve = (name: string, type: string) => resolver.resolve(name, type) as Promise<Array<Array<string>>>

    const policyFor = Effect.fn("MtaSts.policyFor")(function* (input: string): Effect.fn.Return<StsState> {
      const domain = input.toLowerCase().replace(/\.$/, "")
      const now = yield* Clock.currentTimeMillis
      const cached = (yield* Ref.get(cache)).get(domain)
      const fresh = cached !== undefined && cached.expiresAt > now ? cached : undefined
      const id = yield* Effect.tryPromise(() => resolvePolicy(domain, { resolver: resolve })).pipe(Effect.either)
      if (id._tag === "Left") {
        const code = (id.left.error as { code?: unknown }).code
        return withFallback(
          fresh,
          fetchFailure(code === "multi_sts_records" ? "multiple-mta-sts-records" : "dns-lookup")
        )
      }
      if (id.right === false) {
        // RFC 8461 §5.1: a cached policy stays valid without a record until it expires.
        return fresh === undefined ? noSts : withFallback(fresh, fetchFailure("no-mta-sts-dns-txt-record"))
      }
      if (fresh !== undefined && fresh.id === id.right) return fresh.state
      const fetched = yield* fetchPolicyText(domain, config)
      if (fetched._tag === "Failed") return withFallback(fresh, fetched.failure)
      const parsed = parse(fetched.body)
      if (!("state" in parsed)) return withFallback(fresh, parsed)
      const entry: Cached = { id: id.right, state: parsed.state, expiresAt: now + parsed.maxAge * 1000 }
      yield* Ref.update(cache, (m) => new Map(m).set(domain, entry))
      return parsed.state
    })
    return { policyFor }
  })
