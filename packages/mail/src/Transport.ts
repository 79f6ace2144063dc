/**
 * The last hop of a report: one outbox message to one destination. `mailto` messages go to the
 * configured mail transport (an SMTP relay, or a folder); `https` messages are POSTed as
 * `application/tlsrpt+gzip` (RFC 8460 §3, docs/design.md#https-reporting). Failures say whether a retry can help:
 * SMTP 5xx is permanent, 4xx / connection errors / timeouts are temporary; for https every non-2xx
 * status and every timeout is temporary ("retried like mail").
 */
import { type LookupAddress, lookup as dnsLookup } from "node:dns"
import * as Http from "node:http"
import * as Https from "node:https"
import { BlockList, isIP } from "node:net"
import { ReportNaming } from "@tlsrpt/core"
import type { OutboxMessage } from "@tlsrpt/store"
import { Context, Data, Effect, Layer, Metric, Ref, Schema } from "effect"
import { createTransport } from "nodemailer"
import type { DirMessage } from "./DirOutbox.js"
import { makeDirWriter } from "./DirWriter.js"

export { dirFileNames } from "./DirOutbox.js"

export class TransportError extends Data.TaggedError("TransportError")<{
  /** The address or URL the attempt went to. */
  readonly destination: string
  /** True when retrying cannot help (SMTP 5xx, https disabled). */
  readonly permanent: boolean
  /** SMTP reply code or HTTP status, when the peer answered. */
  readonly code?: number | undefined
  readonly reason: string
}> {
  override get message(): string {
    const kind = this.permanent ? "permanent" : "temporary"
    return `${kind} delivery failure to ${this.destination}${this.code === undefined ? "" : ` (${this.code})`}: ${this.reason}`
  }
}

export interface SmtpOptions {
  /** `smtp://host[:port]` (STARTTLS when offered, default port 25) or `smtps://host[:port]` (implicit TLS, 465). */
  readonly url: string
  readonly auth?: { readonly user: string; readonly pass: string } | undefined
  /** POST https reports (default true; `reports.https = false` turns it off). */
  readonly https?: boolean | undefined
  /** Bound of one whole POST: connect, request, response head and the body read (default 30 s). */
  readonly httpsTimeoutMs?: number | undefined
  /** POST to hosts that resolve to loopback, private, link-local or unique-local addresses (default false). */
  readonly httpsAllowPrivate?: boolean | undefined
  /** EHLO name (default: nodemailer's, the host name). */
  readonly hostname?: string | undefined
  /** Connect/greeting timeout and socket idle timeout (default 60 s). */
  readonly timeoutMs?: number | undefined
}

export interface DirOptions {
  readonly dir: string
  /** Accept https reports at all (default true); false fails them permanently. */
  readonly https?: boolean | undefined
  /**
   * Where https reports go in dir mode. "write" (default): the gzip body is written as
   * `<id>-<url>.json.gz` beside its `.json` envelope, so a dry run touches no network. "post": they
   * are POSTed for real, for an embedded setup that has no relay but should still report over https.
   */
  readonly httpsMode?: "write" | "post" | undefined
  readonly httpsTimeoutMs?: number | undefined
  readonly httpsAllowPrivate?: boolean | undefined
}

/** `smtp://host:port` (or `smtps://`, optionally with `user:pass@`); the port defaults to 25 / 465. */
export const SmtpUrl = Schema.String.pipe(
  Schema.filter((s) => {
    let url: URL
    try {
      url = new URL(s)
    } catch {
      return `expected an URL like "smtp://host:port", got ${JSON.stringify(s)}`
    }
    if (url.protocol !== "smtp:" && url.protocol !== "smtps:")
      return `expected an smtp:// or smtps:// URL, got ${url.protocol}`
    if (url.hostname === "") return "the URL has no host"
    if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "")
      return "the URL must be only smtp://[user:pass@]host[:port]"
    return true
  })
)

/**
 * The `transport` section of a configuration file: an SMTP relay (`layerSmtp`) or a folder
 * (`layerDir`), handed to `Transport.layerConfig` whole.
 */
export const TransportConfig = Schema.Union(
  Schema.Struct({ type: Schema.Literal("smtp"), url: SmtpUrl }),
  Schema.Struct({
    type: Schema.Literal("dir"),
    dir: Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))
  })
)
export type TransportConfig = typeof TransportConfig.Type

/** One scripted outcome of the test transport. */
export type TestStep =
  | "ok"
  | { readonly permanent: boolean; readonly code?: number | undefined; readonly reason?: string | undefined }

/** The capturing side of `Transport.layerTest`. */
export class TestTransport extends Context.Tag("@tlsrpt/mail/TestTransport")<
  TestTransport,
  {
    /** Messages delivered (the attempts that succeeded), in order. */
    readonly sent: Effect.Effect<ReadonlyArray<OutboxMessage>>
    /** Every attempt, successful or not, in order. */
    readonly attempts: Effect.Effect<ReadonlyArray<OutboxMessage>>
    /**
     * Outcomes of the next attempts, in order: for one destination, or (no destination) for any
     * destination without its own script. An exhausted script means "ok".
     */
    readonly script: (steps: ReadonlyArray<TestStep>, destination?: string) => Effect.Effect<void>
  }
>() {}

interface TestState {
  readonly sent: ReadonlyArray<OutboxMessage>
  readonly attempts: ReadonlyArray<OutboxMessage>
  /** Keyed by destination; `undefined` is the script for every other destination. */
  readonly scripts: ReadonlyMap<string | undefined, ReadonlyArray<TestStep>>
}

const DEFAULT_HTTPS_TIMEOUT_MS = 30_000

const attemptsTotal = Metric.counter("tlsrpt_delivery_attempts_total", {
  description: "Delivery attempts of outbox messages, by kind and outcome",
  incremental: true
})

type AttemptOutcome = "delivered" | "temporary" | "permanent"

// Tagged once per kind and outcome, not per attempt (each `Metric.tagged` makes a metric key to hash).
const attemptCounters = Object.fromEntries(
  (["mailto", "https"] as const).flatMap((kind) =>
    (["delivered", "temporary", "permanent"] as const).map((outcome) => [
      `${kind} ${outcome}`,
      attemptsTotal.pipe(Metric.tagged("kind", kind), Metric.tagged("outcome", outcome))
    ])
  )
) as Record<`${OutboxMessage["kind"]} ${AttemptOutcome}`, typeof attemptsTotal>

const attemptCounter = (kind: OutboxMessage["kind"], outcome: AttemptOutcome) => attemptCounters[`${kind} ${outcome}`]

/** Counts each attempt by kind and outcome. */
const counted = (
  message: OutboxMessage,
  attempt: Effect.Effect<void, TransportError>
): Effect.Effect<void, TransportError> =>
  attempt.pipe(
    Effect.tapBoth({
      onSuccess: () => Metric.increment(attemptCounter(message.kind, "delivered")),
      onFailure: (e) => Metric.increment(attemptCounter(message.kind, e.permanent ? "permanent" : "temporary"))
    })
  )

const errorText = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** The facts nodemailer attaches to its errors (NodemailerError). */
interface SmtpFailure {
  readonly code?: string | undefined
  readonly responseCode?: number | undefined
  readonly permanent?: boolean | undefined
  readonly response?: string | undefined
  readonly message?: string | undefined
}

/**
 * RFC 5321 §4.2.1: 5yz is a permanent negative reply, 4yz transient (503, a bad command sequence, is
 * about the session, not the message: temporary, as nodemailer classifies it). Errors without a reply
 * (refused connection, timeout, TLS trouble) are temporary: the relay may be back later. So is a
 * refused relay login (535): it is the operator's configuration, not a verdict on the report.
 */
const smtpError = (destination: string, cause: unknown): TransportError => {
  const failure: SmtpFailure = typeof cause === "object" && cause !== null ? (cause as SmtpFailure) : {}
  const code = failure.responseCode
  const relayLogin = failure.code === "EAUTH" || failure.code === "ENOAUTH"
  const permanent =
    code === undefined || relayLogin ? false : (failure.permanent ?? (code >= 500 && code < 600 && code !== 503))
  const reason = failure.response ?? (failure.code ? `${failure.code}: ${errorText(cause)}` : errorText(cause))
  return new TransportError({ destination, permanent, code, reason })
}

/** What `postHttps` reads of any response body: enough for an error text, never a payload. */
export const MAX_RESPONSE_BYTES = 4096

/**
 * Addresses a report must not be POSTed to (RFC 6890 special-purpose ranges): unspecified, loopback,
 * RFC 1918 private, shared (CGN), link-local, benchmarking, multicast and reserved IPv4; unspecified,
 * loopback, unique-local (RFC 4193), link-local and multicast IPv6. Any domain may publish an https
 * `rua=`, so without this a record could make us POST into the operator's own network.
 */
const NON_PUBLIC = (() => {
  const list = new BlockList()
  for (const [net, prefix] of [
    ["0.0.0.0", 8],
    ["10.0.0.0", 8],
    ["100.64.0.0", 10],
    ["127.0.0.0", 8],
    ["169.254.0.0", 16],
    ["172.16.0.0", 12],
    ["192.0.0.0", 24],
    ["192.168.0.0", 16],
    ["198.18.0.0", 15],
    ["224.0.0.0", 4],
    ["240.0.0.0", 4]
  ] as const)
    list.addSubnet(net, prefix, "ipv4")
  for (const [net, prefix] of [
    ["::", 128],
    ["::1", 128],
    ["fc00::", 7],
    ["fe80::", 10],
    ["ff00::", 8]
  ] as const)
    list.addSubnet(net, prefix, "ipv6")
  return list
})()

/** True for an address `NON_PUBLIC` covers; an IPv4-mapped IPv6 address is judged as its IPv4 address. */
export const isNonPublicAddress = (address: string): boolean => {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return NON_PUBLIC.check(mapped[1]!, "ipv4")
  const family = isIP(address)
  if (family === 0) return true
  if (family === 6 && /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/i.test(address)) {
    // ::ffff:7f00:1 = ::ffff:127.0.0.1
    const [hi, lo] = address
      .slice(7)
      .split(":")
      .map((h) => Number.parseInt(h, 16)) as [number, number]
    return NON_PUBLIC.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, "ipv4")
  }
  return NON_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6")
}

class NonPublicAddress extends Error {
  constructor(
    readonly host: string,
    readonly address: string
  ) {
    super(`${host} resolves to ${address}, not a public address`)
  }
}

/**
 * The socket's name lookup, refusing non-public answers. The connection goes to an address this
 * checked, so a second resolution cannot swap in another (DNS rebinding).
 */
const publicLookup: Http.RequestOptions["lookup"] = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses: Array<LookupAddress>) => {
    if (error) return callback(error, "", 0)
    const refused = addresses.find((a) => isNonPublicAddress(a.address))
    if (refused !== undefined) return callback(new NonPublicAddress(hostname, refused.address), "", 0)
    const [first] = addresses
    if (first === undefined) return callback(new Error(`${hostname}: no addresses`), "", 0)
    if (options.all) return (callback as (e: null, a: Array<LookupAddress>) => void)(null, addresses)
    return callback(null, first.address, first.family)
  })
}

interface HttpsSettings {
  readonly timeoutMs: number
  readonly allowPrivate: boolean
}

const httpsSettings = (options: {
  readonly httpsTimeoutMs?: number | undefined
  readonly httpsAllowPrivate?: boolean | undefined
}): HttpsSettings => ({
  timeoutMs: options.httpsTimeoutMs ?? DEFAULT_HTTPS_TIMEOUT_MS,
  allowPrivate: options.httpsAllowPrivate ?? false
})

/**
 * POSTs the gzip report (RFC 8460 §3) with node:http(s) rather than fetch: fetch follows no
 * fixed byte limit, and its socket's name lookup cannot be checked. One timer, real (not the Effect
 * Clock, so TestClock-driven tests still get real I/O), bounds the whole exchange; at most
 * `MAX_RESPONSE_BYTES` of the body are read, then the connection is dropped; a redirect is a
 * non-2xx answer like any other (following it could turn the POST into a GET, or lead anywhere).
 * Interruption destroys the request.
 */
const postHttps = (message: OutboxMessage, settings: HttpsSettings): Effect.Effect<void, TransportError> => {
  const destination = message.destination
  const fail = (permanent: boolean, reason: string, code?: number) =>
    Effect.fail(new TransportError({ destination, permanent, code, reason }))
  let url: URL
  try {
    url = new URL(destination)
  } catch {
    return fail(true, "not a URL")
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return fail(true, `unsupported scheme ${url.protocol}`)
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1")
  // An IP literal is connected to without a lookup, so it is checked here.
  if (!settings.allowPrivate && isIP(host) !== 0 && isNonPublicAddress(host)) {
    return fail(true, new NonPublicAddress(host, host).message)
  }
  return Effect.async<{ readonly status: number; readonly body: string }, TransportError>((resume) => {
    let settled = false
    let status: number | undefined
    const chunks: Array<Buffer> = []
    let received = 0
    const finish = (outcome: Effect.Effect<{ readonly status: number; readonly body: string }, TransportError>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      request.destroy()
      resume(outcome)
    }
    const answered = () =>
      finish(Effect.succeed({ status: status!, body: Buffer.concat(chunks).toString("utf8", 0, received) }))
    const client = url.protocol === "https:" ? Https : Http
    const request = client.request(url, {
      method: "POST",
      headers: { "Content-Type": ReportNaming.MEDIA_TYPE_GZIP, "Content-Length": message.payload.byteLength },
      agent: false,
      ...(settings.allowPrivate ? {} : { lookup: publicLookup })
    })
    const timer = setTimeout(() => {
      // Once the status is known, a body that does not end does not change the answer.
      if (status !== undefined) answered()
      else finish(fail(false, `timeout after ${settings.timeoutMs} ms`))
    }, settings.timeoutMs)
    request.on("response", (response) => {
      status = response.statusCode ?? 0
      response.on("data", (chunk: Buffer) => {
        chunks.push(chunk)
        received += chunk.length
        if (received >= MAX_RESPONSE_BYTES) {
          received = MAX_RESPONSE_BYTES
          answered()
        }
      })
      response.on("end", answered)
      response.on("error", answered)
    })
    request.on("error", (cause) => {
      if (status !== undefined) return answered()
      finish(fail(cause instanceof NonPublicAddress, errorText(cause)))
    })
    request.end(message.payload)
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      request.destroy()
    })
  }).pipe(
    Effect.flatMap(({ status, body }) =>
      status >= 200 && status < 300
        ? Effect.void
        : fail(false, `HTTP status ${status}${body.trim() === "" ? "" : `: ${body.trim().slice(0, 200)}`}`, status)
    )
  )
}

const httpsDisabled = (message: OutboxMessage): TransportError =>
  new TransportError({ destination: message.destination, permanent: true, reason: "https reporting disabled" })

/**
 * What the folder's writer thread gets of a message: plain data, the payload copied only when it is a
 * view of a larger buffer (a thread message copies a view's whole buffer).
 */
const dirMessage = (message: OutboxMessage): DirMessage => {
  const p = message.payload
  return {
    id: message.id,
    kind: message.kind,
    destination: message.destination,
    envelopeFrom: message.envelopeFrom,
    reportId: message.reportId,
    policyDomain: message.policyDomain,
    day: message.day,
    payload: p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : p.slice(),
    contentType: message.kind === "https" ? ReportNaming.MEDIA_TYPE_GZIP : undefined
  }
}

interface SmtpTarget {
  readonly host: string
  readonly port: number
  readonly secure: boolean
  readonly auth: { readonly user: string; readonly pass: string } | undefined
}

export class InvalidRelayUrl extends Data.TaggedError("InvalidRelayUrl")<{
  readonly url: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid relay URL ${JSON.stringify(this.url)}: ${this.reason}`
  }
}

/** Parses `smtp://[user:pass@]host[:port]` / `smtps://…`. */
export const parseSmtpUrl = (url: string): Effect.Effect<SmtpTarget, InvalidRelayUrl> =>
  Effect.gen(function* () {
    const parsed = yield* Effect.try({
      try: () => new URL(url),
      catch: () => new InvalidRelayUrl({ url, reason: "not a URL" })
    })
    const secure = parsed.protocol === "smtps:"
    if (!secure && parsed.protocol !== "smtp:") {
      return yield* new InvalidRelayUrl({ url, reason: `scheme must be smtp: or smtps:, not ${parsed.protocol}` })
    }
    if (parsed.hostname === "") return yield* new InvalidRelayUrl({ url, reason: "no host" })
    const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1")
    const port = parsed.port === "" ? (secure ? 465 : 25) : Number(parsed.port)
    const auth =
      parsed.username === ""
        ? undefined
        : { user: decodeURIComponent(parsed.username), pass: decodeURIComponent(parsed.password) }
    return { host, port, secure, auth }
  })

const make = (send: (message: OutboxMessage) => Effect.Effect<void, TransportError>, concurrency?: number) =>
  Transport.of({ send: (message) => counted(message, send(message)), concurrency })

/**
 * Messages the `dir` transport takes in flight at once (`Transport.concurrency`): its writes are local
 * and go to its threads a turn's worth per thread message, so more in flight means fewer round trips
 * per message (https bodies it posts, with `httpsMode: "post"`, go to as many different receivers).
 * At delivery's 4, delivery fell 1.7–2.3 s behind a 10,000-report round on the VM's ext4 disk; at 16,
 * 1.0–1.7 s, and 32 was no better (the `round` bench, interleaved; docs/design.md#delivery-loop).
 */
export const DIR_CONCURRENCY = 16

export class Transport extends Context.Tag("@tlsrpt/mail/Transport")<
  Transport,
  {
    /** One delivery attempt of one outbox message. */
    readonly send: (message: OutboxMessage) => Effect.Effect<void, TransportError>
    /**
     * How many messages this transport takes in flight at once, when delivery is not told
     * (`DeliveryOptions.concurrency`); none: delivery's default (4, a relay's fair share).
     */
    readonly concurrency?: number | undefined
  }
>() {
  /**
   * Mail through a relay with nodemailer's SMTP transport. STARTTLS is used when offered, with
   * certificate errors ignored and a plaintext fallback when the upgrade fails: a report must get
   * through broken TLS (RFC 8460 §5, docs/design.md#transports: TLS is not required). Envelope sender = the message's
   * From address, one recipient per message.
   */
  static readonly layerSmtp = (options: SmtpOptions): Layer.Layer<Transport, InvalidRelayUrl> =>
    Layer.scoped(
      Transport,
      Effect.gen(function* () {
        const target = yield* parseSmtpUrl(options.url)
        const auth = options.auth ?? target.auth
        const timeoutMs = options.timeoutMs ?? 60_000
        const mailer = yield* Effect.acquireRelease(
          Effect.sync(() =>
            createTransport({
              host: target.host,
              port: target.port,
              secure: target.secure,
              ...(auth ? { auth: { user: auth.user, pass: auth.pass } } : {}),
              ...(options.hostname ? { name: options.hostname } : {}),
              ignoreTLS: false,
              requireTLS: false,
              opportunisticTLS: true,
              tls: { rejectUnauthorized: false },
              connectionTimeout: timeoutMs,
              greetingTimeout: timeoutMs,
              socketTimeout: timeoutMs,
              logger: false
            })
          ),
          (m) => Effect.sync(() => m.close())
        )
        const https = options.https ?? true
        const httpsOptions = httpsSettings(options)
        const sendMail = (message: OutboxMessage) =>
          Effect.tryPromise({
            try: (signal) =>
              mailer.sendMail({
                envelope: { from: message.envelopeFrom, to: [message.destination] },
                raw: Buffer.from(message.payload),
                signal
              }),
            catch: (cause) => smtpError(message.destination, cause)
          }).pipe(Effect.asVoid)
        return make((message) =>
          message.kind === "mailto"
            ? sendMail(message)
            : https
              ? postHttps(message, httpsOptions)
              : Effect.fail(httpsDisabled(message))
        )
      })
    )

  /** The transport a `TransportConfig` names, with the https settings both kinds take. */
  static readonly layerConfig = (
    config: TransportConfig,
    https: Pick<SmtpOptions, "https" | "httpsAllowPrivate">
  ): Layer.Layer<Transport, InvalidRelayUrl> =>
    config.type === "smtp"
      ? Transport.layerSmtp({ url: config.url, ...https })
      : Transport.layerDir({ dir: config.dir, ...https })

  /**
   * Writes each message into a folder (DirOutbox.ts): `<id>-<destination>.eml` (the raw mail) or
   * `.json.gz` (an https body) plus `<id>-<destination>.json` with the envelope (from, to, reportId,
   * policyDomain, day, kind). The embedded default without a relay, and an operator's dry run. The
   * files are written on threads of their own (DirWriter.ts), which the layer's scope stops.
   */
  static readonly layerDir = (options: DirOptions): Layer.Layer<Transport> => {
    const https = options.https ?? true
    const httpsOptions = httpsSettings(options)
    return Layer.scoped(
      Transport,
      Effect.map(makeDirWriter(), (writer) => {
        // a full disk or a missing mount may heal: temporary
        const toDir = (message: OutboxMessage) =>
          Effect.mapError(
            writer.write(options.dir, dirMessage(message)),
            (reason) =>
              new TransportError({
                destination: message.destination,
                permanent: false,
                reason: `writing to ${options.dir}: ${reason}`
              })
          )
        return make(
          (message) =>
            message.kind === "mailto"
              ? toDir(message)
              : !https
                ? Effect.fail(httpsDisabled(message))
                : options.httpsMode === "post"
                  ? postHttps(message, httpsOptions)
                  : toDir(message),
          DIR_CONCURRENCY
        )
      })
    )
  }

  /** A capturing transport with a scripted outcome per attempt, for simulations; see `TestTransport`. */
  static readonly layerTest = (initial: ReadonlyArray<TestStep> = []): Layer.Layer<Transport | TestTransport> =>
    Layer.effectContext(
      Effect.gen(function* () {
        const state = yield* Ref.make<TestState>({
          sent: [],
          attempts: [],
          scripts: new Map([[undefined, initial]])
        })
        const next = (destination: string) =>
          Ref.modify(state, (s): [TestStep, TestState] => {
            const key = s.scripts.has(destination) ? destination : undefined
            const [step = "ok", ...rest] = s.scripts.get(key) ?? []
            const scripts = new Map(s.scripts)
            if (key !== undefined && rest.length === 0) scripts.delete(key)
            else scripts.set(key, rest)
            return [step, { ...s, scripts }]
          })
        const transport = make((message) =>
          Effect.gen(function* () {
            const step = yield* next(message.destination)
            yield* Ref.update(state, (s) => ({ ...s, attempts: [...s.attempts, message] }))
            if (step !== "ok") {
              return yield* new TransportError({
                destination: message.destination,
                permanent: step.permanent,
                code: step.code,
                reason: step.reason ?? (step.permanent ? "scripted permanent failure" : "scripted temporary failure")
              })
            }
            yield* Ref.update(state, (s) => ({ ...s, sent: [...s.sent, message] }))
          })
        )
        const test = TestTransport.of({
          sent: Effect.map(Ref.get(state), (s) => s.sent),
          attempts: Effect.map(Ref.get(state), (s) => s.attempts),
          script: (steps, destination) =>
            Ref.update(state, (s) => ({ ...s, scripts: new Map(s.scripts).set(destination, steps) }))
        })
        return Context.make(Transport, transport).pipe(Context.add(TestTransport, test))
      })
    )
}
