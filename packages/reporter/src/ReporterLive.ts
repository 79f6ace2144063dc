/**
 * `Reporter.layer`: the round of docs/design.md#the-daily-round on the store, the TLSRPT lookup and the report
 * mail composer, with the decisions of docs/design.md#temporary-dns-errors-keep-results (temporary DNS errors keep and retry the key;
 * syntax / multiple records discard it; mark-sent + outbox in one transaction; https destinations;
 * each report describes its own day).
 */
import { type Day, Domain, type EmailAddress, PolicyResult, TlsrptRecord } from "@tlsrpt/core"
import { TlsrptLookup } from "@tlsrpt/dns"
import { gzipReport, ReportMail } from "@tlsrpt/mail"
import { type NewOutboxMessage, ResultStore } from "@tlsrpt/store"
import { Cause, Clock, Duration, Effect, Layer, Metric, Schedule } from "effect"
import { type KeyOutcome, type KeyReport, Reporter, type ReporterConfig, ReporterError } from "./Reporter.js"
import * as RoundPlan from "./RoundPlan.js"

type Phase = KeyReport["phase"]

const keysCounter = Metric.counter("tlsrpt_report_keys_total", { description: "Report keys handled, by outcome" })
const reportsCounter = Metric.counter("tlsrpt_reports_queued_total", { description: "Reports committed to the outbox" })
const messagesCounter = Metric.counter("tlsrpt_report_messages_queued_total", {
  description: "Outbox messages written (one per destination)"
})
const suppressedCounter = Metric.counter("tlsrpt_report_recipients_suppressed_total", {
  description: "Recipients skipped because of the suppression list"
})
const destinationsCappedCounter = Metric.counter("tlsrpt_report_destinations_capped_total", {
  description: "TLSRPT records with more reporting URIs than MAX_DESTINATIONS"
})

/**
 * At most this many reporting URIs of one record get the report. RFC 8460 sets no limit, but a policy
 * domain must not turn one report into thousands of messages from us (a TXT record over TCP can list
 * hundreds of addresses); real records list one or two.
 */
export const MAX_DESTINATIONS = 10

const roundsCounter = Metric.counter("tlsrpt_report_rounds_total", { description: "Report rounds run" })
const roundDuration = Metric.timerWithBoundaries(
  "tlsrpt_report_round_duration",
  [1000, 10_000, 60_000, 600_000, 3_600_000, 14_400_000]
)

/** Whether the key's rows may be deleted after the round (docs/design.md#cleanup-matrix). */
const cleanupOf: Record<KeyOutcome, boolean> = {
  sent: true,
  "not-requested": true,
  "no-record": true,
  "no-destinations": true,
  "no-failure": true,
  "already-sent": true,
  "nothing-left": true,
  "all-suppressed": true,
  "discarded-syntax": true,
  "discarded-multiple": true,
  "kept-temporary": false,
  "kept-error": false
}

const done = (
  phase: Phase,
  policyDomain: string,
  day: Day.Day,
  outcome: KeyOutcome,
  queued = 0,
  detail?: string
): Effect.Effect<KeyReport> =>
  Metric.increment(Metric.tagged(keysCounter, "outcome", outcome)).pipe(
    Effect.as({ phase, policyDomain, day, outcome, queued, detail })
  )

/**
 * The per-key work of docs/design.md#per-key-steps as a function of (phase, policy domain, day, retries, inBoth).
 * It never fails: every outcome is a KeyReport. Exposed for the fleet, whose sharded entities run it for one key each.
 */
export type KeySender = (
  phase: Phase,
  policyDomain: string,
  day: Day.Day,
  retries: ReadonlyArray<Duration.Duration>,
  inBoth: boolean
) => Effect.Effect<KeyReport>

export const makeKeySender = (config: ReporterConfig) =>
  Effect.gen(function* () {
    const store = yield* ResultStore
    const lookup = yield* TlsrptLookup
    const mail = yield* ReportMail
    const submitter = mail.submitter

    /** The TLSRPT lookup, retried on temporary errors while `retries` allow (docs/design.md#temporary-dns-errors-keep-results). */
    const lookupWithRetries = (domain: Domain.Domain, retries: ReadonlyArray<Duration.Duration>) => {
      const [first, ...rest] = retries
      if (first === undefined) return lookup.lookup(domain)
      return lookup.lookup(domain).pipe(
        Effect.retry({
          schedule: Schedule.fromDelays(first, ...rest).pipe(
            Schedule.tapOutput((d) =>
              Effect.logWarning(`temporary DNS error, retrying the TLSRPT lookup in ${Duration.format(d)}`)
            )
          ),
          while: (e) => e._tag === "TlsrptTemporaryError"
        })
      )
    }

    /** docs/design.md#per-key-steps for one key. Never fails: every outcome is a KeyReport. */
    const sendKey = (
      phase: Phase,
      policyDomainText: string,
      day: Day.Day,
      retries: ReadonlyArray<Duration.Duration>,
      inBoth: boolean
    ) =>
      Effect.gen(function* () {
        const parsed = Domain.parse(policyDomainText)
        if (parsed._tag === "Left")
          return yield* done(phase, policyDomainText, day, "kept-error", 0, parsed.left.message)
        const policyDomain = parsed.right

        const found = yield* lookupWithRetries(policyDomain, retries).pipe(Effect.either)
        if (found._tag === "Left") {
          const e = found.left
          switch (e._tag) {
            case "NoTlsrptRecord":
              return yield* done(phase, policyDomainText, day, "no-record")
            case "TlsrptTemporaryError":
              return yield* done(phase, policyDomainText, day, "kept-temporary", 0, e.message)
            case "MultipleTlsrptRecords":
              yield* Effect.logWarning("several TLSRPT records: the domain does not implement TLSRPT (RFC 8460 §3)")
              return yield* done(phase, policyDomainText, day, "discarded-multiple", 0, e.message)
            case "TlsrptSyntaxError":
              yield* Effect.logWarning("TLSRPT record syntax error: results discarded (RFC 8460 §3)", e.message)
              return yield* done(phase, policyDomainText, day, "discarded-syntax", 0, e.message)
          }
        }
        const destinations = TlsrptRecord.destinations(found.right.record)
        for (const d of destinations) {
          if (d._tag === "Unsupported") yield* Effect.logInfo(`ignoring reporting URI ${d.uri}: ${d.reason}`)
        }
        const usable = destinations.filter((d) => d._tag === "Mailto" || (config.https && d._tag === "Https"))
        if (usable.length > MAX_DESTINATIONS) {
          yield* Metric.increment(destinationsCappedCounter)
          yield* Effect.logWarning(
            `the TLSRPT record lists ${usable.length} reporting URIs; reporting to the first ${MAX_DESTINATIONS} only`
          )
        }
        const kept = usable.slice(0, MAX_DESTINATIONS)
        const mailto = kept.flatMap((d) => (d._tag === "Mailto" ? [d] : []))
        const https = kept.flatMap((d) => (d._tag === "Https" ? [d] : []))
        if (mailto.length === 0 && https.length === 0)
          return yield* done(phase, policyDomainText, day, "no-destinations")
        // The rua strings as in DNS, stored by phase 1 and compared in phase 2 per destination kind
        // (docs/design.md#reporting-destinations, docs/design.md#mx-host-rewrite; docs/design.md#phase-2-skip-per-kind).
        const mailtoUris = mailto.map((d) => d.uri)
        const httpsUris = https.map((d) => d.uri)

        const rows =
          phase === "recipient-domain"
            ? yield* store.rowsByRecipientDomain(policyDomain.ascii, day)
            : yield* store.rowsByPolicyDomain(policyDomain.ascii, day)
        if (rows.length === 0) return yield* done(phase, policyDomainText, day, "nothing-left", 0, "no rows")
        if (RoundPlan.alreadySent(phase, rows)) return yield* done(phase, policyDomainText, day, "already-sent")

        // In phase 1 both kinds get the same policies; in phase 2 each kind skips the rows its own
        // addresses already got from the recipient domain's report.
        const mailPolicies = mailto.length > 0 ? RoundPlan.policiesOf(phase, rows, "mailto", mailtoUris) : []
        const httpsPolicies = https.length > 0 ? RoundPlan.policiesOf(phase, rows, "https", httpsUris) : []
        if (mailPolicies.length === 0 && httpsPolicies.length === 0)
          return yield* done(phase, policyDomainText, day, "nothing-left")
        const worth = (policies: ReadonlyArray<PolicyResult.PolicyResult>) =>
          policies.length > 0 && (config.forAllSuccess || PolicyResult.hasFailure(policies))
        if (!worth(mailPolicies) && !worth(httpsPolicies)) {
          return yield* done(phase, policyDomainText, day, "no-failure")
        }
        const reportOf = (policies: ReadonlyArray<PolicyResult.PolicyResult>) =>
          RoundPlan.report(submitter, policyDomain, day, policies, { mxHost: phase === "policy-domain" && inBoth })

        const now = new Date(yield* Clock.currentTimeMillis)
        const to: Array<EmailAddress.EmailAddress> = []
        if (worth(mailPolicies)) {
          for (const d of mailto) {
            if (to.some((a) => a.normalized === d.address.normalized)) continue
            if (yield* store.isSuppressed(d.address.normalized, now)) {
              yield* Metric.increment(suppressedCounter)
              yield* Effect.logInfo(`suppressed reporting address ${d.address.normalized}`)
            } else to.push(d.address)
          }
        }
        const urls: Array<string> = []
        if (worth(httpsPolicies)) {
          for (const d of https) {
            if (urls.includes(d.url)) continue
            // docs/design.md#suppression: https destinations can be suppressed as addresses can.
            if (yield* store.isSuppressed(d.url, now)) {
              yield* Metric.increment(suppressedCounter)
              yield* Effect.logInfo(`suppressed reporting URI ${d.url}`)
            } else urls.push(d.url)
          }
        }
        const messages: Array<NewOutboxMessage> = []
        let reportId = ""
        if (to.length > 0) {
          const report = reportOf(mailPolicies)
          reportId = report.reportId
          const composed = yield* mail.compose({ report, policyDomain, day, to })
          for (const address of to) {
            messages.push({
              kind: "mailto",
              // RFC 5321 §2.4: delivered to the address as published; compared only in normal form.
              destination: address.mailbox,
              envelopeFrom: composed.envelopeFrom,
              payload: composed.raw,
              reportId: report.reportId,
              policyDomain: policyDomain.ascii,
              day
            })
          }
        }
        if (urls.length > 0) {
          const report = reportOf(httpsPolicies)
          reportId = report.reportId
          const body = gzipReport(report)
          for (const url of urls) {
            messages.push({
              kind: "https",
              destination: url,
              envelopeFrom: "",
              payload: body,
              reportId: report.reportId,
              policyDomain: policyDomain.ascii,
              day
            })
          }
        }
        // docs/design.md#one-transaction-for-mark-and-outbox: marking rows sent and writing the outbox is one transaction.
        yield* store
          .markSentAndEnqueue(
            phase === "recipient-domain"
              ? { phase, recipientDomain: policyDomain.ascii, day, reportingAddresses: [...mailtoUris, ...httpsUris] }
              : { phase, policyDomain: policyDomain.ascii, day },
            messages
          )
          .pipe(Effect.uninterruptible)
        if (messages.length === 0) return yield* done(phase, policyDomainText, day, "all-suppressed")
        yield* Metric.increment(reportsCounter)
        yield* Metric.incrementBy(messagesCounter, messages.length)
        yield* Effect.logInfo(`report ${reportId} queued for ${messages.length} destination(s)`)
        return yield* done(phase, policyDomainText, day, "sent", messages.length)
      }).pipe(
        // docs/design.md#cleanup-matrix: store, compose and other errors keep the rows for the next round; a defect is
        // logged and counted and does not stop the round.
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.interrupt
            : Effect.logError("sending a report failed; results kept for the next round", cause).pipe(
                Effect.zipRight(done(phase, policyDomainText, day, "kept-error", 0, Cause.pretty(cause).split("\n")[0]))
              )
        ),
        Effect.withLogSpan("report"),
        Effect.annotateLogs({ phase, policyDomain: policyDomainText, day }),
        Effect.withSpan("Reporter.sendKey", { attributes: { phase, policyDomain: policyDomainText, day } })
      )

    return sendKey satisfies KeySender
  })

/**
 * The round around a per-key step: the plan, pacing, the two phases and the cleanup. `sendKey` is the
 * local step (`makeKeySender`) or, in the fleet, a call to the key's entity; `concurrency` bounds unpaced sends.
 */
export const makeRound = (config: ReporterConfig, sendKey: KeySender, tuning?: { readonly concurrency?: number }) =>
  Effect.gen(function* () {
    const store = yield* ResultStore
    const runRound = Effect.fn("Reporter.runRound")(
      function* (day: Day.Day, options?: { readonly pace?: boolean }) {
        const pace = options?.pace ?? true
        const started = yield* Clock.currentTimeMillis
        const deletedStale = yield* store.deleteBefore(RoundPlan.staleBefore(day))
        const plan = RoundPlan.plan(yield* store.keysUpTo(day))
        const gap = RoundPlan.gap(config.window, config.maxGap, plan.toSend)
        // A temporary DNS error is retried later within the round's window, never past it.
        const deadline = started + Duration.toMillis(config.window)
        const retries = pace ? config.temporaryRetries : []
        yield* Effect.logInfo(
          `report round: ${plan.recipientDomains.length} recipient-domain and ${plan.mxHosts.length} MX-host keys, ${plan.toSend} to send, gap ${Duration.format(gap)}`
        )
        const paced = pace && Duration.toMillis(gap) > 0
        const retriesLeft = (now: number) =>
          retries.filter(
            (_, i) => now + retries.slice(0, i + 1).reduce((s, d) => s + Duration.toMillis(d), 0) <= deadline
          )

        /**
         * docs/design.md#pacing: wait `gap` before every send but the very first of the round; sends run concurrently
         * so pacing does not depend on processing time. Without pacing, a bounded number run at once.
         */
        const runPhase = (phase: Phase, keys: ReadonlyArray<RoundPlan.PlannedKey>, offset: number) => {
          let slot = offset
          const tasks = keys.map((key) => {
            if (!key.send) return done(phase, key.policyDomain, key.day, "not-requested")
            const delay = Duration.times(gap, slot++)
            return Effect.gen(function* () {
              if (paced && Duration.toMillis(delay) > 0) yield* Effect.sleep(delay)
              return yield* sendKey(
                phase,
                key.policyDomain,
                key.day,
                retriesLeft(yield* Clock.currentTimeMillis),
                key.inBoth
              )
            })
          })
          return Effect.all(tasks, { concurrency: paced ? "unbounded" : (tuning?.concurrency ?? 8) })
        }

        // docs/design.md#two-phases: phase 2 reads the reporting addresses phase 1 stored, so phase 1 finishes first.
        const phase1 = yield* runPhase("recipient-domain", plan.recipientDomains, 0)
        const phase2 = yield* runPhase(
          "policy-domain",
          plan.mxHosts,
          phase1.some((k) => k.outcome !== "not-requested") ? 1 : 0
        )
        const keys = [...phase1, ...phase2]

        // Each phase cleans up the rows it owns: mox deletes a key in both maps when either phase
        // allows it, which loses the other phase's rows on a temporary DNS error
        // (docs/design.md#cleanup-per-phase).
        const deleted = yield* store.deleteKeys(
          keys.filter((k) => cleanupOf[k.outcome]).map(({ phase, policyDomain, day }) => ({ phase, policyDomain, day }))
        )
        const kept = keys.filter((k) => !cleanupOf[k.outcome])
        const summary = {
          day,
          keys,
          reports: keys.filter((k) => k.outcome === "sent").length,
          queued: keys.reduce((s, k) => s + k.queued, 0),
          kept,
          deletedRows: deleted + deletedStale
        }
        yield* Metric.increment(roundsCounter)
        yield* Metric.update(roundDuration, Duration.millis((yield* Clock.currentTimeMillis) - started))
        yield* Effect.logInfo(
          `report round done: ${summary.reports} reports, ${summary.queued} messages queued, ${kept.length} keys kept`
        )
        return summary
      },
      (effect, day) =>
        effect.pipe(
          Effect.catchTag("StoreError", (e) => Effect.fail(new ReporterError({ day, reason: e.message, cause: e }))),
          Effect.annotateLogs({ round: day })
        )
    )

    return Reporter.of({ runRound })
  })

export const make = (config: ReporterConfig) =>
  Effect.flatMap(makeKeySender(config), (sendKey) => makeRound(config, sendKey))

export const layer = (config: ReporterConfig) => Layer.effect(Reporter, make(config))
