/**
 * Composes one report mail and DKIM-signs it (RFC 8460 §5.3, docs/design.md#message-composition):
 * `multipart/report; report-type="tlsrpt"` with a human-readable text part and the
 * `application/tlsrpt+gzip` attachment, the `TLS-Report-Domain`/`TLS-Report-Submitter` headers
 * (both signed), `TLS-Required: No` (RFC 8689 §5: a report must get through broken TLS), signed
 * with every key of the submitter domain.
 */
import { gzipSync } from "node:zlib"
import { type Day, Domain, type EmailAddress, Report, ReportNaming } from "@tlsrpt/core"
import { Clock, Context, Data, Effect, Either, Layer, Metric, type Scope } from "effect"
import { type DkimKey, type DkimKeyError, dkimKeyFromPem } from "./DkimKeys.js"
import { makeComposePool } from "./ComposePool.js"
import { type DkimSignerKey, type DkimSignerOptions, makeDkimSigner } from "./DkimSigner.js"
import { type ReportJob, renderReportAndSign } from "./ReportMailRender.js"
import { fromAddress, type Submitter } from "./Submitter.js"

export interface ComposeInput {
  readonly report: Report.Report
  readonly policyDomain: Domain.Domain
  readonly day: Day.Day
  /** Only the addresses this message goes to (docs/design.md#to-lists-only-the-recipients). */
  readonly to: ReadonlyArray<EmailAddress.EmailAddress>
}

export interface ComposedMail {
  /** The signed message: DKIM-Signature headers, then the MIME message, CRLF line ends. */
  readonly raw: Uint8Array
  /** With angle brackets, as in the header. */
  readonly messageId: string
  /** Unfolded. */
  readonly subject: string
  /** SMTP MAIL FROM. */
  readonly envelopeFrom: string
}

export class ComposeError extends Data.TaggedError("ComposeError")<{
  readonly policyDomain: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot compose the report mail for ${this.policyDomain}: ${this.reason}`
  }
}

/** RFC 8460 §5.3: reports MUST be DKIM-signed; without a key for the submitter domain we do not report. */
export class NoDkimKey extends Data.TaggedError("NoDkimKey")<{
  readonly domain: string
}> {
  override get message(): string {
    return `no DKIM signing key for the submitter domain ${this.domain}: reports cannot be sent unsigned`
  }
}

export interface ReportMailConfig {
  readonly submitter: Submitter
  readonly dkim: ReadonlyArray<DkimKey>
  /** Right-hand side of Message-IDs; default the submitter domain. */
  readonly hostname?: string | undefined
  /**
   * Worker threads that render and sign (ComposePool.ts); 0 or absent = in-thread. The worker app
   * sizes it to the cores (`defaultPoolSize`), so a round uses all of them.
   */
  readonly workers?: number | undefined
}

/**
 * Signed header fields. RFC 8460 §5.3: `TLS-Report-Domain` and `TLS-Report-Submitter` MUST be
 * included; `TLS-Required` too, so nobody can add or alter it unnoticed.
 */
export const SIGNED_HEADERS: ReadonlyArray<string> = [
  "From",
  "To",
  "Subject",
  "Date",
  "Message-ID",
  "MIME-Version",
  "Content-Type",
  "TLS-Report-Domain",
  "TLS-Report-Submitter",
  "TLS-Required"
]

/**
 * Signed once more than they occur (RFC 6376 §8.15), as mox signs: nobody can add a second From,
 * Subject or TLS-Report-Domain to a report, or a TLS-Required, without breaking the signature.
 */
export const OVERSIGNED_HEADERS: ReadonlyArray<string> = [
  "From",
  "To",
  "Subject",
  "Date",
  "Message-ID",
  "Content-Type",
  "TLS-Report-Domain",
  "TLS-Report-Submitter",
  "TLS-Required"
]

export const reportsComposed = Metric.counter("tlsrpt_reports_composed_total", {
  description: "Report mails composed and DKIM-signed",
  incremental: true
})

/** The report as gzip-compressed JSON: the mail attachment and the https POST body (RFC 8460 §3, §5.3). */
export const gzipReport = (report: Report.Report): Uint8Array =>
  gzipSync(Buffer.from(Report.encodeJsonString(report), "utf8"))

// The Random service looked up once, not per byte (the same numbers in the same order).
const randomBytes = (n: number): Effect.Effect<Buffer> =>
  Effect.randomWith((random) =>
    Effect.map(Effect.all(Array.from({ length: n }, () => random.nextIntBetween(0, 256))), (bytes) =>
      Buffer.from(bytes)
    )
  )

/**
 * The human-readable part (RFC 8460 §5.3 allows one; docs/design.md#message-composition lists its labelled lines). Lines stay
 * under 76 characters, so an ASCII text goes out 7bit rather than quoted-printable.
 */
const textPart = (
  submitter: Submitter,
  policyDomain: Domain.Domain,
  reportId: string,
  period: { readonly begin: string; readonly end: string }
): string => {
  return [
    "This is an aggregate SMTP TLS report (RFC 8460, TLSRPT).",
    "It counts the TLS sessions our mail servers established, and the",
    "sessions that failed, while delivering mail to the policy domain",
    "below during one UTC day. You receive it because your address is",
    "listed in the rua of that domain's TLSRPT record (_smtp._tls).",
    "The report is attached as gzip-compressed JSON.",
    "",
    `Policy Domain: ${Domain.toLogString(policyDomain)}`,
    `Submitter: ${Domain.toLogString(submitter.domain)}`,
    `Report-ID: ${reportId}`,
    `Period: ${period.begin} - ${period.end} UTC`,
    ""
  ].join("\r\n")
}

export interface ReportMailService {
  readonly submitter: Submitter
  readonly compose: (input: ComposeInput) => Effect.Effect<ComposedMail, ComposeError>
  /**
   * A batch of reports in one call: each one's mail or error, in input order, the same bytes as
   * `compose` one by one (the same Clock, the same Random draws in input order). A round composes a
   * batch of keys this way: one wait on the compose pool per batch instead of a fiber, a span and a
   * wait per report (README "The round's main thread").
   */
  readonly composeAll: (
    inputs: ReadonlyArray<ComposeInput>
  ) => Effect.Effect<ReadonlyArray<Either.Either<ComposedMail, ComposeError>>>
}

/** Renders and signs a batch of jobs, each to its mail or its error: in-thread, or on the compose pool (ComposePool.ts). */
type Render = (jobs: ReadonlyArray<ReportJob>) => Effect.Effect<ReadonlyArray<Either.Either<Uint8Array, unknown>>>

const make = <R>(
  config: ReportMailConfig,
  renderer: (signer: {
    readonly keys: ReadonlyArray<DkimSignerKey>
    readonly options: DkimSignerOptions
  }) => Effect.Effect<Render, never, R>
): Effect.Effect<ReportMailService, NoDkimKey | DkimKeyError | Domain.DomainError, R> =>
  Effect.gen(function* () {
    const { submitter } = config
    const hostname = yield* Domain.parse(config.hostname ?? submitter.domain.ascii)
    const keys = yield* Effect.forEach(
      config.dkim.filter((k) => Domain.equals(k.domain, submitter.domain)),
      (k) => dkimKeyFromPem({ ...k, domain: k.domain.ascii, file: `<selector ${k.selector}>` })
    )
    if (keys.length === 0) return yield* new NoDkimKey({ domain: submitter.domain.ascii })
    const from = fromAddress(submitter)
    const render = yield* renderer({
      keys: keys.map((k) => ({
        domain: submitter.domain.ascii,
        selector: k.selector,
        algorithm: k.algorithm,
        privateKeyPem: k.privateKeyPem
      })),
      options: { headers: SIGNED_HEADERS, oversign: OVERSIGNED_HEADERS }
    })

    // A round's reports share one or two days: the period's text is made once per day.
    let period: { readonly day: Day.Day; readonly text: { readonly begin: string; readonly end: string } } | undefined
    const periodOf = (day: Day.Day) => {
      if (period?.day !== day) period = { day, text: ReportNaming.period(day) }
      return period.text
    }

    const composeAll = (inputs: ReadonlyArray<ComposeInput>) =>
      Effect.gen(function* () {
        const fail = (input: ComposeInput, reason: string, cause?: unknown) => {
          const policyDomain = input.policyDomain.ascii
          return new ComposeError(cause === undefined ? { policyDomain, reason } : { policyDomain, reason, cause })
        }
        // One To entry per mailbox, first spelling, in record order (a record may list one twice).
        const tos = inputs.map((input) =>
          input.to.filter((a, i) => input.to.findIndex((b) => b.normalized === a.normalized) === i)
        )
        const now = new Date(yield* Clock.currentTimeMillis)
        // 28 draws per mail, mail after mail: the bytes `compose` one by one draws
        const random = yield* randomBytes(28 * tos.filter((to) => to.length > 0).length)
        let drawn = 0
        const jobs: Array<ReportJob> = []
        const results: Array<Either.Either<ComposedMail, ComposeError>> = new Array(inputs.length)
        const pending: Array<readonly [number, ComposedMail]> = []
        for (const [i, input] of inputs.entries()) {
          const to = tos[i]!
          if (to.length === 0) {
            results[i] = Either.left(fail(input, "no recipients"))
            continue
          }
          const policy = input.policyDomain
          const mine = random.subarray(drawn, drawn + 28)
          drawn += 28
          const messageId = `<${mine.subarray(0, 16).toString("base64url")}@${hostname.ascii}>`
          const boundary = `tlsrpt-${mine.subarray(16).toString("hex")}`
          const subject = ReportNaming.subject(policy, submitter.domain, input.report.reportId)
          jobs.push({
            hostname: hostname.ascii,
            from,
            to: to.map((a) => `${a.localPart}@${a.domain.ascii}`),
            subject,
            reportHeaders: Object.entries(ReportNaming.headers(policy, submitter.domain)),
            messageId,
            date: now.getTime(),
            boundary,
            text: textPart(submitter, policy, input.report.reportId, periodOf(input.day)),
            filename: ReportNaming.filename(input.day, policy, submitter.domain),
            mediaType: ReportNaming.MEDIA_TYPE_GZIP,
            report: input.report
          })
          pending.push([i, { raw: new Uint8Array(0), messageId, subject, envelopeFrom: from }])
        }
        const raws = jobs.length === 0 ? [] : yield* render(jobs)
        let composed = 0
        for (const [j, [i, mail]] of pending.entries()) {
          const raw = raws[j]!
          if (Either.isLeft(raw)) {
            results[i] = Either.left(fail(inputs[i]!, "cannot encode, build or DKIM-sign the message", raw.left))
            continue
          }
          results[i] = Either.right({ ...mail, raw: raw.right })
          composed++
        }
        yield* Metric.incrementBy(reportsComposed, composed)
        return results
      })

    const compose = Effect.fn("ReportMail.compose")(function* (input: ComposeInput) {
      yield* Effect.annotateCurrentSpan({ policyDomain: input.policyDomain.ascii, recipients: input.to.length })
      const [result] = yield* composeAll([input])
      return yield* result!
    })

    return { submitter, compose, composeAll } satisfies ReportMailService
  })

/**
 * Builds the service, rendering and signing in-thread (tests, TestClock simulations, small
 * deployments); fails when the submitter domain has no DKIM key (reporting refuses to start,
 * docs/design.md#explicit-submitter) or one of its keys is unusable.
 */
export const makeReportMail = (
  config: ReportMailConfig
): Effect.Effect<ReportMailService, NoDkimKey | DkimKeyError | Domain.DomainError> =>
  make(config, (init) =>
    Effect.sync(() => {
      const signer = makeDkimSigner(init.keys, init.options)
      return (jobs: ReadonlyArray<ReportJob>) =>
        Effect.sync(() => jobs.map((job) => Either.try(() => renderReportAndSign(job, signer))))
    })
  )

/** The same service, rendering and signing on `size` worker threads, closed with the scope. */
export const makeReportMailPooled = (
  config: ReportMailConfig,
  size: number
): Effect.Effect<ReportMailService, NoDkimKey | DkimKeyError | Domain.DomainError, Scope.Scope> =>
  make(config, (init) =>
    Effect.map(
      makeComposePool(size, init),
      (pool) => (jobs: ReadonlyArray<ReportJob>) =>
        Effect.map(pool.runAll(jobs), (raws) =>
          raws.map((raw) => (raw instanceof Uint8Array ? Either.right(raw) : Either.left(raw)))
        )
    )
  )

export class ReportMail extends Context.Tag("@tlsrpt/mail/ReportMail")<ReportMail, ReportMailService>() {
  static readonly layer = (
    config: ReportMailConfig
  ): Layer.Layer<ReportMail, NoDkimKey | DkimKeyError | Domain.DomainError> =>
    (config.workers ?? 0) > 0
      ? Layer.scoped(ReportMail, makeReportMailPooled(config, config.workers ?? 0))
      : Layer.effect(ReportMail, makeReportMail(config))
}
