/**
 * Recording the outcome of one delivery attempt made with nodemailer's `SMTPConnection`
 * (`nodemailer/lib/smtp-connection`), without changing how it delivers: `observe` wraps the
 * connection's greeting, EHLO, STARTTLS and TLS-upgrade steps on this one instance so they note what
 * they saw and then do exactly what they did before; `recordAttempt` runs the MTA's own delivery
 * effect and records the outcome when it ends, however it ends.
 *
 * The steps wrapped are nodemailer internals (`_actionGreeting`, `_actionEHLO`, `_actionSTARTTLS`,
 * `_upgradeConnection`): its public API has no events for them. The end-to-end tests in
 * test/e2e/RealTls.test.ts run these paths against a real server, so a nodemailer that renames them fails
 * there, not silently in production.
 */
import type { X509Certificate } from "node:crypto"
import type { TLSSocket } from "node:tls"
import { Collector } from "@tlsrpt/collector"
import { Clock, Effect, Either, Option } from "effect"
import type SMTPConnection from "nodemailer/lib/smtp-connection"
import { type Attempt, type StartTls, toOutcome } from "./Attempt.js"
import { matchesEndEntity } from "./Dane.js"
import type { DaneState, StsState } from "./PolicyInForce.js"

type Step = (this: SMTPConnection, str: string) => void
type Upgrade = (this: SMTPConnection, callback: (err: unknown, secured?: boolean) => void) => void

interface Internals {
  _actionGreeting: Step
  _actionEHLO: Step
  _actionSTARTTLS: Step
  _upgradeConnection: Upgrade
}

/** What the session showed so far. */
export interface Observed {
  readonly greeting: string | undefined
  readonly sendingIp: string | undefined
  readonly receivingIp: string | undefined
  readonly starttls: StartTls
  /** The server's certificate after a successful handshake (for DANE matching). */
  readonly peerCertificate: X509Certificate | undefined
}

export interface Observer {
  /** A snapshot of what was seen. */
  readonly observed: () => Observed
}

const isTlsAlert = (e: unknown): boolean => {
  const f = e as { code?: unknown; originalCode?: unknown }
  return [f.code, f.originalCode].some((c) => typeof c === "string" && c.startsWith("ERR_SSL_"))
}

/** Installs the observing wrappers on one connection; call before `connect`. */
export const observe = (connection: SMTPConnection): Observer => {
  const c = connection as unknown as Internals
  const state: {
    greeting?: string | undefined
    sendingIp?: string | undefined
    receivingIp?: string | undefined
    starttls: StartTls
    peerCertificate?: X509Certificate | undefined
    upgrading: boolean
  } = { starttls: { _tag: "NotReached" }, upgrading: false }
  const greeting = c._actionGreeting
  const ehlo = c._actionEHLO
  const starttls = c._actionSTARTTLS
  const upgrade = c._upgradeConnection

  c._actionGreeting = function (this: SMTPConnection, str: string) {
    state.greeting = str
    const socket = this._socket
    if (socket) {
      state.sendingIp = socket.localAddress
      state.receivingIp = socket.remoteAddress
    }
    return greeting.call(this, str)
  }
  c._actionEHLO = function (this: SMTPConnection, str: string) {
    // the first (plaintext) EHLO reply says whether STARTTLS is offered (RFC 3207 §4)
    if (!this.secure && state.starttls._tag === "NotReached" && str.startsWith("2") && !/[ -]STARTTLS\b/im.test(str))
      state.starttls = { _tag: "NotOffered" }
    return ehlo.call(this, str)
  }
  c._actionSTARTTLS = function (this: SMTPConnection, str: string) {
    if (!str.startsWith("2")) state.starttls = { _tag: "Rejected", replyCode: Number(str.slice(0, 3)) || 0 }
    return starttls.call(this, str)
  }
  c._upgradeConnection = function (this: SMTPConnection, callback) {
    state.upgrading = true
    return upgrade.call(this, (err, secured) => {
      state.upgrading = false
      if (err) state.starttls = { _tag: "HandshakeFailed", error: err }
      else {
        const socket = this._socket as TLSSocket
        // Node sets authorizationError to the verification error's code (CERT_HAS_EXPIRED, …)
        const authorizationError: unknown = socket.authorized ? undefined : socket.authorizationError
        state.starttls = {
          _tag: "Secured",
          authorizationError: authorizationError == null ? undefined : String(authorizationError)
        }
        state.peerCertificate = socket.getPeerX509Certificate()
      }
      return callback(err, secured)
    })
  }
  connection.on("error", (err: unknown) => {
    if (state.upgrading) {
      state.upgrading = false
      state.starttls = { _tag: "HandshakeFailed", error: err }
    } else if (state.starttls._tag === "Secured" && state.starttls.errorAfterHandshake === undefined && isTlsAlert(err))
      state.starttls = { ...state.starttls, errorAfterHandshake: err }
  })
  return {
    observed: () => ({
      greeting: state.greeting,
      sendingIp: state.sendingIp,
      receivingIp: state.receivingIp,
      starttls: state.starttls,
      peerCertificate: state.peerCertificate
    })
  }
}

export interface AttemptContext {
  readonly recipientDomain: string
  readonly mxHost: string
  readonly sts: StsState
  readonly dane: DaneState
  readonly isTlsReport?: boolean | undefined
  readonly isDmarcReport?: boolean | undefined
}

/** The attempt as seen; DANE-EE is matched against the server's certificate when the caller did not say. */
export const attemptOf = (context: AttemptContext, seen: Observed): Omit<Attempt, "timestamp"> => {
  const dane =
    context.dane._tag === "Tlsa" && context.dane.matched === undefined && seen.peerCertificate !== undefined
      ? { ...context.dane, matched: matchesEndEntity(context.dane.records, seen.peerCertificate) }
      : context.dane
  return {
    recipientDomain: context.recipientDomain,
    mxHost: context.mxHost,
    sendingIp: seen.sendingIp,
    receivingIp: seen.receivingIp,
    greeting: seen.greeting,
    starttls: seen.starttls,
    sts: context.sts,
    dane,
    isTlsReport: context.isTlsReport,
    isDmarcReport: context.isDmarcReport
  }
}

/**
 * Runs `deliver` (the MTA's own connect, send and quit on `connection`) and records the attempt's
 * outcome through the `Collector` when it ends, by success, failure or interruption. The delivery's
 * result is returned unchanged; an outcome the Collector refuses is logged, never raised.
 */
export const recordAttempt = <A, E, R>(
  connection: SMTPConnection,
  context: AttemptContext,
  deliver: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | Collector> =>
  Effect.gen(function* () {
    const observer = observe(connection)
    const record = Effect.suspend(() => recordFacts(attemptOf(context, observer.observed()))).pipe(
      Effect.withSpan("SmtpAttempt.record")
    )
    return yield* Effect.ensuring(deliver, record)
  })

/**
 * Records an attempt the MTA made without this helper's observer, e.g. a host it skipped because an
 * enforced MTA-STS policy does not list it (`starttls: NotReached`).
 */
export const recordFacts = (
  attempt: Omit<Attempt, "timestamp"> & { readonly timestamp?: Date | undefined }
): Effect.Effect<void, never, Collector> =>
  Effect.gen(function* () {
    const timestamp = attempt.timestamp ?? new Date(yield* Clock.currentTimeMillis)
    const outcome = toOutcome({ ...attempt, timestamp })
    if (Either.isLeft(outcome)) return yield* Effect.logWarning("tlsrpt: attempt not recorded", outcome.left)
    if (Option.isNone(outcome.right)) return
    const collector = yield* Collector
    yield* collector
      .record(outcome.right.value)
      .pipe(Effect.catchAll((e) => Effect.logWarning("tlsrpt: attempt not recorded", e)))
  })
