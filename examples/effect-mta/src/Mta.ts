/**
 * A tiny MTA written with Effect: it delivers one message to one MX host with nodemailer's
 * SMTPConnection, under the recipient domain's MTA-STS policy, and records the attempt's TLS outcome
 * through tlsrpt's `Collector`. The region between the markers is the README's "Embedding in an
 * Effect MTA" snippet (test/Readme.test.ts keeps them equal).
 */
import type { ConnectionOptions } from "node:tls"
import { Data, Effect } from "effect"
import SMTPConnection from "nodemailer/lib/smtp-connection"

export class DeliveryFailed extends Data.TaggedError("DeliveryFailed")<{
  readonly mxHost: string
  readonly reason: string
}> {}

export interface Message {
  readonly from: string
  readonly to: ReadonlyArray<string>
  readonly raw: string
}

export interface Route {
  readonly recipientDomain: string
  /** The MX host name (what certificates and MTA-STS `mx:` patterns are checked against). */
  readonly mxHost: string
  /** Where to connect: the MX host's address and port. */
  readonly address: string
  readonly port: number
  /** Extra TLS options, e.g. the trusted CAs. */
  readonly tls?: ConnectionOptions | undefined
}

/** connect → send → quit on one connection: the MTA's own delivery, untouched by tlsrpt. */
const send = (connection: SMTPConnection, message: Message, mxHost: string) =>
  Effect.async<void, DeliveryFailed>((resume) => {
    const fail = (e: unknown) => resume(Effect.fail(new DeliveryFailed({ mxHost, reason: String(e) })))
    connection.once("error", fail)
    connection.connect((err) => {
      if (err) return fail(err)
      connection.send({ from: message.from, to: [...message.to] }, message.raw, (e) => {
        connection.quit()
        if (e) fail(e)
        else resume(Effect.void)
      })
    })
    return Effect.sync(() => connection.close())
  })

// #region embedding
import { MtaSts, PolicyInForce, SmtpAttempt } from "@tlsrpt/outcome"

export const deliver = (message: Message, route: Route) =>
  Effect.gen(function* () {
    const sts = yield* (yield* MtaSts).policyFor(route.recipientDomain)
    const enforce = sts._tag === "Policy" && sts.policy.mode === "enforce"
    const context = { recipientDomain: route.recipientDomain, mxHost: route.mxHost, sts, dane: PolicyInForce.noDane }
    if (enforce && !PolicyInForce.mxMatches(route.mxHost, sts.policy)) {
      // RFC 8461 §5: an enforced policy that does not list the host forbids delivering to it
      yield* SmtpAttempt.recordFacts({ ...context, starttls: { _tag: "NotReached" } })
      return yield* new DeliveryFailed({ mxHost: route.mxHost, reason: "not listed in the MTA-STS policy" })
    }
    const connection = new SMTPConnection({
      host: route.address,
      port: route.port,
      servername: route.mxHost,
      name: "mta.example",
      // enforce: TLS with a valid certificate or nothing; otherwise opportunistic TLS
      requireTLS: enforce,
      opportunisticTLS: !enforce,
      tls: { ...route.tls, rejectUnauthorized: enforce }
    })
    // records the attempt's TLS outcome through the Collector, however the delivery ends
    yield* SmtpAttempt.recordAttempt(connection, context, send(connection, message, route.mxHost))
  })
// #endregion embedding
