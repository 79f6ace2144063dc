/**
 * An SMTP relay on loopback for tests (smtp-server): records every accepted message with its envelope
 * and raw bytes, and answers each mail transaction from a programmable script (e.g. 421, 421, accept),
 * so delivery, retry and permanent-failure paths run against a real SMTP peer.
 */
import { Effect, Queue, type Scope } from "effect"
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server"

/** Where a scripted rejection is given: MAIL FROM, RCPT TO, or after the DATA body (default). */
export type SmtpStage = "mail" | "rcpt" | "data"

/** One step of the reply script: accept, or reject with an SMTP code (a bare number rejects at DATA). */
export type SmtpReply =
  | "accept"
  | number
  | { readonly code: number; readonly message?: string | undefined; readonly at?: SmtpStage | undefined }

export interface SmtpSinkOptions {
  /** One step per mail transaction (MAIL FROM), in order; once used up, every transaction is accepted. */
  readonly script?: ReadonlyArray<SmtpReply> | undefined
  /**
   * Offer STARTTLS with smtp-server's built-in self-signed localhost certificate. Off by default, so a
   * test that wants a plaintext relay gets one.
   */
  readonly starttls?: boolean | undefined
  /** Offer STARTTLS with this key and certificate chain (PEM) instead of the built-in one. */
  readonly tls?: { readonly key: string; readonly cert: string } | undefined
  /** Require nothing but accept AUTH PLAIN/LOGIN with these credentials (authOptional). */
  readonly auth?: { readonly user: string; readonly pass: string } | undefined
}

export interface ReceivedMail {
  readonly from: string
  readonly to: ReadonlyArray<string>
  readonly raw: Uint8Array
  /** Whether the session was TLS (STARTTLS) when the message came in. */
  readonly secure: boolean
  /** The authenticated user, if the client logged in. */
  readonly user: string | undefined
  /** The client's EHLO name. */
  readonly clientHostname: string
}

/** One mail transaction as the sink saw it, accepted or not. */
export interface SmtpTransaction {
  readonly from: string
  readonly to: ReadonlyArray<string>
  /** 250 when accepted, else the scripted code. */
  readonly code: number
}

export interface SmtpSink {
  readonly host: string
  readonly port: number
  /** `smtp://127.0.0.1:<port>` */
  readonly url: string
  /** Accepted messages, in arrival order. */
  readonly received: Effect.Effect<ReadonlyArray<ReceivedMail>>
  /** Every mail transaction, accepted or rejected. */
  readonly transactions: Effect.Effect<ReadonlyArray<SmtpTransaction>>
  /** Waits for the next accepted message. */
  readonly take: Effect.Effect<ReceivedMail>
  /** Replaces the rest of the reply script. */
  readonly setScript: (script: ReadonlyArray<SmtpReply>) => Effect.Effect<void>
}

const normalizeReply = (
  reply: SmtpReply
): { readonly code: number; readonly message: string; readonly at: SmtpStage } | undefined => {
  if (reply === "accept") return undefined
  if (typeof reply === "number") return { code: reply, message: `scripted ${reply}`, at: "data" }
  return { code: reply.code, message: reply.message ?? `scripted ${reply.code}`, at: reply.at ?? "data" }
}

const smtpError = (code: number, message: string): Error => Object.assign(new Error(message), { responseCode: code })

const collect = (stream: NodeJS.ReadableStream): Promise<Uint8Array> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))))
    stream.on("error", reject)
  })

/** Starts the sink on 127.0.0.1, port 0; it is closed when the scope closes. */
export const make = (options: SmtpSinkOptions = {}): Effect.Effect<SmtpSink, never, Scope.Scope> =>
  Effect.gen(function* () {
    let script: Array<SmtpReply> = [...(options.script ?? [])]
    const received: Array<ReceivedMail> = []
    const transactions: Array<SmtpTransaction> = []
    const arrivals = yield* Effect.acquireRelease(Queue.unbounded<ReceivedMail>(), Queue.shutdown)
    // The step a transaction drew at MAIL FROM, looked up again at RCPT and DATA.
    const steps = new Map<string, ReturnType<typeof normalizeReply>>()

    const envelopeOf = (session: SMTPServerSession) => ({
      from: session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address,
      to: session.envelope.rcptTo.map((r) => r.address)
    })
    const reject = (session: SMTPServerSession, code: number, message: string): Error => {
      transactions.push({ ...envelopeOf(session), code })
      return smtpError(code, message)
    }

    const disabled = [
      ...(options.starttls === true || options.tls !== undefined ? [] : ["STARTTLS"]),
      ...(options.auth ? [] : ["AUTH"])
    ]
    const serverOptions: SMTPServerOptions = {
      logger: false,
      authOptional: true,
      allowInsecureAuth: true,
      disableReverseLookup: true,
      disabledCommands: disabled,
      closeTimeout: 200,
      ...(options.tls === undefined ? {} : { key: options.tls.key, cert: options.tls.cert }),
      onAuth(auth, _session, callback) {
        if (options.auth && auth.username === options.auth.user && auth.password === options.auth.pass) {
          callback(null, { user: auth.username })
        } else {
          callback(smtpError(535, "authentication failed"))
        }
      },
      onMailFrom(address, session, callback) {
        const step = normalizeReply(script.shift() ?? "accept")
        steps.set(session.id, step)
        if (step?.at === "mail") {
          transactions.push({ from: address.address, to: [], code: step.code })
          return callback(smtpError(step.code, step.message))
        }
        callback()
      },
      onRcptTo(_address, session, callback) {
        const step = steps.get(session.id)
        if (step?.at === "rcpt") return callback(reject(session, step.code, step.message))
        callback()
      },
      onData(stream, session, callback) {
        collect(stream).then(
          (raw) => {
            const step = steps.get(session.id)
            steps.delete(session.id)
            if (step !== undefined) return callback(reject(session, step.code, step.message))
            const envelope = envelopeOf(session)
            const mail: ReceivedMail = {
              ...envelope,
              raw,
              secure: session.secure,
              user: typeof session.user === "string" ? session.user : undefined,
              clientHostname: session.hostNameAppearsAs
            }
            transactions.push({ ...envelope, code: 250 })
            received.push(mail)
            Queue.unsafeOffer(arrivals, mail)
            callback(null, "accepted")
          },
          (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)))
        )
      }
    }

    const server = yield* Effect.acquireRelease(
      Effect.async<SMTPServer>((resume) => {
        const s = new SMTPServer(serverOptions)
        s.on("error", () => {
          // client resets are normal in fault tests; the sink only records transactions
        })
        s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
      }),
      (s) => Effect.async<void>((resume) => s.close(() => resume(Effect.void)))
    )
    const address = server.server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    return {
      host: "127.0.0.1",
      port,
      url: `smtp://127.0.0.1:${port}`,
      received: Effect.sync(() => [...received]),
      transactions: Effect.sync(() => [...transactions]),
      take: Queue.take(arrivals),
      setScript: (next) =>
        Effect.sync(() => {
          script = [...next]
        })
    } satisfies SmtpSink
  })
