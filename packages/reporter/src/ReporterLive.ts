/**
 * `Reporter.layer`: the round of docs/design.md#the-daily-round on the store, the TLSRPT lookup and the report
 * mail composer, with the decisions of docs/design.md#temporary-dns-errors-keep-results (temporary DNS errors keep and retry the key;
 * syntax / multiple records discard it; mark-sent + outbox in one transaction; https destinations;
 * each report describes its own day).
 */
import { type Day, Domain, PolicyResult, Slots, SuppressionTarget, TlsrptRecord } from "@tlsrpt/core"
import { TlsrptLookup, type TlsrptLookupError, type TlsrptLookupResult } from "@tlsrpt/dns"
import { type ComposedMail, type ComposeError, type ComposeInput, gzipReport, ReportMail } from "@tlsrpt/mail"
import {
  type MarkSent,
  type MarkSentReport,
  type NewOutboxMessage,
  ResultStore,
  type ResultRow,
  SuppressionList
} from "@tlsrpt/store"
import { Cause, Clock, Deferred, Duration, Effect, Either, Exit, FiberRef, Layer, LogLevel, Metric } from "effect"
import * as Destinations from "./Destinations.js"
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

export { MAX_DESTINATIONS } from "./Destinations.js"

/** Unpaced rounds: keys per batch (one read, one commit), batches in flight, lookups at once per batch. */
const BATCH = 64
const PIPELINE = 3
const LOOKUPS = 8

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

// One tagged counter per outcome, made once rather than per key.
const keysCounters = Object.fromEntries(
  Object.keys(cleanupOf).map((outcome) => [outcome, Metric.tagged(keysCounter, "outcome", outcome)])
) as Record<KeyOutcome, typeof keysCounter>

const done = (
  phase: Phase,
  policyDomain: string,
  day: Day.Day,
  outcome: KeyOutcome,
  queued = 0,
  detail?: string
): Effect.Effect<KeyReport> =>
  Metric.increment(keysCounters[outcome]).pipe(Effect.as({ phase, policyDomain, day, outcome, queued, detail }))

/**
 * A batch of one phase's keys through docs/design.md#per-key-steps: every key gets a KeyReport, in
 * input order; never fails. `turn` is awaited before the batch commits (commits in key order).
 */
export type BatchSender = (
  phase: Phase,
  keys: ReadonlyArray<RoundPlan.PlannedKey>,
  retries: ReadonlyArray<Duration.Duration>,
  turn?: Effect.Effect<void>
) => Effect.Effect<ReadonlyArray<KeyReport>>

/**
 * One key's step, for the fleet, whose sharded entities run it for one key each
 * (docs/design.md#fleet-mode). It never fails: every outcome is a KeyReport.
 */
export type KeySender = (
  phase: Phase,
  policyDomain: string,
  day: Day.Day,
  retries: ReadonlyArray<Duration.Duration>,
  inBoth: boolean
) => Effect.Effect<KeyReport>

/** The local batch sender: lookups, one read, compose, one commit per batch. */
export const makeBatchSender = (config: ReporterConfig) =>
  Effect.gen(function* () {
    const store = yield* ResultStore
    const suppressions = yield* SuppressionList
    const lookup = yield* TlsrptLookup
    const mail = yield* ReportMail
    const submitter = mail.submitter

    /** The TLSRPT lookup, retried on temporary errors while `retries` allow (docs/design.md#temporary-dns-errors-keep-results). */
    const lookupWithRetries = (
      domain: Domain.Domain,
      retries: ReadonlyArray<Duration.Duration>,
      logs: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    ): Effect.Effect<TlsrptLookupResult, TlsrptLookupError> =>
      // Only a temporary error is retried and logged: a domain without a record (most of them) is not
      // a DNS error, and the last failure is not followed by a retry.
      lookup.lookup(domain).pipe(
        Effect.catchTag("TlsrptTemporaryError", (e) => {
          const [delay, ...rest] = retries
          if (delay === undefined) return Effect.fail(e)
          return Effect.logWarning(
            `temporary DNS error (${e.code}), retrying the TLSRPT lookup in ${Duration.format(delay)}`
          ).pipe(logs, Effect.zipRight(Effect.sleep(delay)), Effect.zipRight(lookupWithRetries(domain, rest, logs)))
        })
      )

    /** A key whose record gave usable destinations (docs/design.md#per-key-steps 1–2). */
    interface Looked {
      readonly key: RoundPlan.PlannedKey
      readonly policyDomain: Domain.Domain
      readonly destinations: ReadonlyArray<TlsrptRecord.Destination>
      readonly chosen: Destinations.Selection
    }
    /** A report ready to commit (docs/design.md#per-key-steps 3–7). */
    interface Ready extends MarkSentReport {
      readonly key: RoundPlan.PlannedKey
      readonly reportId: string
    }
    /** A key's report before its mail is composed: the batch composes all its mails in one call. */
    interface Prepared {
      readonly key: RoundPlan.PlannedKey
      readonly reportId: string
      readonly mark: MarkSent
      /** The mail to compose, to these addresses (docs/design.md#to-lists-only-the-recipients). */
      readonly mail: ComposeInput | undefined
      readonly https: ReadonlyArray<NewOutboxMessage>
    }

    // Put on each log line of a key, not around the key's whole work: setting the annotations (a
    // HashMap in a FiberRef) compares the old and new maps by hash, and per key, in and out of each
    // step, that was a visible share of a round's main thread.
    const keyLogs = (phase: Phase, key: RoundPlan.PlannedKey) =>
      Effect.annotateLogs({ phase, policyDomain: key.policyDomain, day: key.day })

    /** The outcome of keys hit by an error: kept for the next round. */
    const keptOnError = (phase: Phase, keys: ReadonlyArray<RoundPlan.PlannedKey>, cause: Cause.Cause<unknown>) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.forEach(keys, (key) =>
            Effect.logError("sending a report failed; results kept for the next round", cause).pipe(
              Effect.zipRight(
                done(phase, key.policyDomain, key.day, "kept-error", 0, Cause.pretty(cause).split("\n")[0])
              ),
              keyLogs(phase, key)
            )
          )

    /**
     * docs/design.md#cleanup-matrix: store, compose and other errors keep the rows for the next round; a
     * defect is logged and counted and does not stop the round.
     */
    const keyOnError =
      (phase: Phase, key: RoundPlan.PlannedKey) =>
      <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A | KeyReport, never, R> =>
        self.pipe(Effect.catchAllCause((cause) => Effect.map(keptOnError(phase, [key], cause), ([r]) => r!)))

    /** docs/design.md#per-key-steps 1–2: the record and its destinations. */
    const lookupKey = (phase: Phase, key: RoundPlan.PlannedKey, retries: ReadonlyArray<Duration.Duration>) =>
      Effect.gen(function* () {
        const parsed = Domain.parse(key.policyDomain)
        if (parsed._tag === "Left")
          return yield* done(phase, key.policyDomain, key.day, "kept-error", 0, parsed.left.message)
        const policyDomain = parsed.right
        const logs = keyLogs(phase, key)
        const found = yield* lookupWithRetries(policyDomain, retries, logs).pipe(Effect.either)
        if (found._tag === "Left") {
          const e = found.left
          switch (e._tag) {
            case "NoTlsrptRecord":
              return yield* done(phase, key.policyDomain, key.day, "no-record")
            case "TlsrptTemporaryError":
              return yield* done(phase, key.policyDomain, key.day, "kept-temporary", 0, e.message)
            case "MultipleTlsrptRecords":
              yield* Effect.logWarning(
                "several TLSRPT records: the domain does not implement TLSRPT (RFC 8460 §3)"
              ).pipe(logs)
              return yield* done(phase, key.policyDomain, key.day, "discarded-multiple", 0, e.message)
            case "TlsrptSyntaxError":
              yield* Effect.logWarning("TLSRPT record syntax error: results discarded (RFC 8460 §3)", e.message).pipe(
                logs
              )
              return yield* done(phase, key.policyDomain, key.day, "discarded-syntax", 0, e.message)
          }
        }
        const destinations = TlsrptRecord.destinations(found.right.record)
        const chosen = Destinations.select(destinations, { https: config.https })
        for (const c of chosen.choices) {
          if (c.destination._tag === "Unsupported")
            yield* Effect.logInfo(`ignoring reporting URI ${c.destination.uri}: ${c.destination.reason}`).pipe(logs)
        }
        if (chosen.usable > Destinations.MAX_DESTINATIONS) {
          yield* Metric.increment(destinationsCappedCounter)
          yield* Effect.logWarning(
            `the TLSRPT record lists ${chosen.usable} reporting URIs; reporting to the first ${Destinations.MAX_DESTINATIONS} only`
          ).pipe(logs)
        }
        if (chosen.mailto.length === 0 && chosen.https.length === 0)
          return yield* done(phase, key.policyDomain, key.day, "no-destinations")
        return { key, policyDomain, destinations, chosen } satisfies Looked
      }).pipe(keyOnError(phase, key))

    /** docs/design.md#per-key-steps 4–7 on the key's fetched rows: the report and its messages, or the outcome. */
    const prepareKey = (
      phase: Phase,
      looked: Looked,
      rows: ReadonlyArray<ResultRow>,
      isSuppressed: (target: string) => boolean
    ) =>
      Effect.gen(function* () {
        const { key, policyDomain, chosen } = looked
        const day = key.day
        if (rows.length === 0) return yield* done(phase, key.policyDomain, day, "nothing-left", 0, "no rows")
        if (RoundPlan.alreadySent(phase, rows)) return yield* done(phase, key.policyDomain, day, "already-sent")
        // The rua strings as in DNS, stored by phase 1 and compared in phase 2 per destination kind
        // (docs/design.md#mx-host-rewrite; docs/design.md#phase-2-skip-per-kind). In phase 1 both kinds
        // get the same policies; in phase 2 each kind skips the rows its own addresses already got.
        const mailtoUris = chosen.mailto.map((d) => d.uri)
        const httpsUris = chosen.https.map((d) => d.uri)
        const mailPolicies = mailtoUris.length > 0 ? RoundPlan.policiesOf(phase, rows, "mailto", mailtoUris) : []
        const httpsPolicies = httpsUris.length > 0 ? RoundPlan.policiesOf(phase, rows, "https", httpsUris) : []
        if (mailPolicies.length === 0 && httpsPolicies.length === 0)
          return yield* done(phase, key.policyDomain, day, "nothing-left")
        const worth = (policies: ReadonlyArray<PolicyResult.PolicyResult>) =>
          policies.length > 0 && (config.forAllSuccess || PolicyResult.hasFailure(policies))
        const sendMail = worth(mailPolicies)
        const sendHttps = worth(httpsPolicies)
        if (!sendMail && !sendHttps) return yield* done(phase, key.policyDomain, day, "no-failure")
        const reportOf = (policies: ReadonlyArray<PolicyResult.PolicyResult>) =>
          RoundPlan.report(submitter, policyDomain, day, policies, { mxHost: phase === "policy-domain" && key.inBoth })

        // docs/design.md#suppression-and-queueing: only the kinds that are sent are checked.
        const targets = [...(sendMail ? chosen.to.map((a) => a.normalized) : []), ...(sendHttps ? chosen.urls : [])]
        const suppressed = new Set(targets.filter(isSuppressed))
        const { choices, to, urls } =
          suppressed.size === 0
            ? chosen
            : Destinations.select(looked.destinations, { https: config.https, isSuppressed: (t) => suppressed.has(t) })
        for (const c of choices) {
          if (c.verdict !== "suppressed" || c.destination._tag === "Unsupported") continue
          yield* Metric.increment(suppressedCounter)
          yield* Effect.logInfo(
            c.destination._tag === "Mailto"
              ? `suppressed reporting address ${c.destination.address.normalized}`
              : `suppressed reporting URI ${c.destination.url}`
          ).pipe(keyLogs(phase, key))
        }

        let reportId = ""
        let mailInput: ComposeInput | undefined
        if (sendMail && to.length > 0) {
          const report = reportOf(mailPolicies)
          reportId = report.reportId
          mailInput = { report, policyDomain, day, to }
        }
        const https: Array<NewOutboxMessage> = []
        if (sendHttps && urls.length > 0) {
          const report = reportOf(httpsPolicies)
          reportId = report.reportId
          const body = gzipReport(report)
          for (const url of urls) {
            https.push({
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
        const mark: MarkSent =
          phase === "recipient-domain"
            ? { phase, recipientDomain: policyDomain.ascii, day, reportingAddresses: [...mailtoUris, ...httpsUris] }
            : { phase, policyDomain: policyDomain.ascii, day }
        return { key, reportId, mark, mail: mailInput, https } satisfies Prepared
      }).pipe(keyOnError(phase, looked.key))

    /**
     * The batch's mails in one `composeAll` (one wait on the compose pool for the batch, no fiber per
     * key); each key's messages, mailto before https, or its failure. If the batch call itself fails
     * (a defect), each mail is composed alone, so one bad report keeps only its own key.
     */
    const composeKeys = (prepared: ReadonlyArray<Prepared>) =>
      Effect.gen(function* () {
        const inputs = prepared.flatMap((p) => (p.mail === undefined ? [] : [p.mail]))
        const composed: ReadonlyArray<Exit.Exit<ComposedMail, ComposeError>> =
          inputs.length === 0
            ? []
            : yield* mail.composeAll(inputs).pipe(
                Effect.map((rs) => rs.map((r) => (Either.isRight(r) ? Exit.succeed(r.right) : Exit.fail(r.left)))),
                Effect.catchAllCause((cause) =>
                  Cause.isInterruptedOnly(cause)
                    ? Effect.failCause(cause)
                    : Effect.forEach(inputs, (input) => Effect.exit(mail.compose(input)))
                )
              )
        let j = 0
        return prepared.map((p): Ready | Cause.Cause<unknown> => {
          const messages: Array<NewOutboxMessage> = []
          if (p.mail !== undefined) {
            const exit = composed[j++]!
            if (Exit.isFailure(exit)) return exit.cause
            const { policyDomain, day, to, report } = p.mail
            for (const address of to) {
              messages.push({
                kind: "mailto",
                // RFC 5321 §2.4: delivered to the address as published; compared only in normal form.
                destination: address.mailbox,
                envelopeFrom: exit.value.envelopeFrom,
                payload: exit.value.raw,
                reportId: report.reportId,
                policyDomain: policyDomain.ascii,
                day
              })
            }
          }
          messages.push(...p.https)
          return { key: p.key, reportId: p.reportId, mark: p.mark, messages }
        })
      })

    const isReport = (r: object): r is KeyReport => "outcome" in r

    /**
     * docs/design.md#per-key-steps for a batch of keys of one phase, in order: lookups, ONE read of
     * all their rows, each report composed (on the compose pool, concurrently), then ONE commit of the
     * batch's marks and messages (docs/design.md#mark-sent-and-enqueue: all or nothing, so still exactly
     * once) after `turn` (the previous batch's commit), so the outbox holds the round's reports in key
     * order. Never fails: every key gets a KeyReport, in input order.
     */
    const sendBatch = (
      phase: Phase,
      keys: ReadonlyArray<RoundPlan.PlannedKey>,
      retries: ReadonlyArray<Duration.Duration>,
      turn: Effect.Effect<void> = Effect.void
    ): Effect.Effect<ReadonlyArray<KeyReport>> =>
      Effect.gen(function* () {
        const outcomes: Array<KeyReport> = new Array(keys.length)
        // LOOKUPS fibers, not one per key (Slots.ts).
        const looked: Array<Looked | KeyReport> = new Array(keys.length)
        yield* Slots.forEach(keys, LOOKUPS, (key, i) =>
          Effect.map(lookupKey(phase, key, retries), (l) => {
            looked[i] = l
          })
        )
        const toRead: Array<readonly [number, Looked]> = []
        for (const [i, l] of looked.entries()) {
          if (isReport(l)) outcomes[i] = l
          else toRead.push([i, l])
        }

        const keep = (keys: ReadonlyArray<readonly [number, RoundPlan.PlannedKey]>, cause: Cause.Cause<unknown>) =>
          Effect.map(
            keptOnError(
              phase,
              keys.map(([, k]) => k),
              cause
            ),
            (kept) => {
              for (const [j, r] of kept.entries()) outcomes[keys[j]![0]] = r
            }
          )
        // A failed read or commit keeps the rows of exactly the keys it was for. The suppression list is
        // read once per batch (an operator's list: short), each target compared in its normal form
        // (docs/design.md#normalised-suppression-addresses).
        const read = yield* Effect.zip(
          store.rowsOfKeys(
            phase,
            toRead.map(([, l]) => ({ domain: l.policyDomain.ascii, day: l.key.day }))
          ),
          toRead.length === 0 ? Effect.succeed([]) : suppressions.list
        ).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(
              keep(
                toRead.map(([i, l]) => [i, l.key] as const),
                cause
              ),
              undefined
            )
          )
        )
        const ready: Array<readonly [number, Ready]> = []
        if (read !== undefined) {
          const [rows, list] = read
          const now = yield* Clock.currentTimeMillis
          const active = new Set(list.filter((e) => e.until.getTime() > now).map((e) => e.address))
          const isSuppressed = (target: string) =>
            active.size > 0 &&
            Either.match(SuppressionTarget.normalize(target), { onLeft: () => false, onRight: (n) => active.has(n) })
          // one key after the other in this fiber: nothing here waits (the mails are composed below)
          const prepared = yield* Effect.forEach(toRead, ([, l], j) => prepareKey(phase, l, rows[j]!, isSuppressed))
          const toCompose: Array<readonly [number, Prepared]> = []
          for (const [j, p] of prepared.entries()) {
            const i = toRead[j]![0]
            if (isReport(p)) outcomes[i] = p
            else toCompose.push([i, p])
          }
          const composed = yield* composeKeys(toCompose.map(([, p]) => p))
          for (const [j, c] of composed.entries()) {
            const [i, p] = toCompose[j]!
            if (Cause.isCause(c)) outcomes[i] = (yield* keptOnError(phase, [p.key], c))[0]!
            else ready.push([i, c])
          }
        }

        yield* turn
        // docs/design.md#one-transaction-for-mark-and-outbox: marking rows sent and writing the outbox is one transaction.
        const committed = yield* store.markSentAndEnqueueAll(ready.map(([, r]) => r)).pipe(
          Effect.uninterruptible,
          Effect.as(true),
          Effect.catchAllCause((cause) =>
            Effect.as(
              keep(
                ready.map(([i, r]) => [i, r.key] as const),
                cause
              ),
              false
            )
          )
        )
        if (committed) {
          // the counters once per batch, not three updates per report
          let reports = 0
          let messages = 0
          // Whether the per-report line is logged, asked once per batch: a dropped line still cost its
          // annotations (a HashMap in a FiberRef) and a step per report.
          const logQueued = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Info)
          for (const [i, r] of ready) {
            const n = r.messages.length
            if (n === 0) {
              outcomes[i] = yield* done(phase, r.key.policyDomain, r.key.day, "all-suppressed")
              continue
            }
            reports++
            messages += n
            if (logQueued)
              yield* Effect.logInfo(`report ${r.reportId} queued for ${n} destination(s)`).pipe(keyLogs(phase, r.key))
            outcomes[i] = {
              phase,
              policyDomain: r.key.policyDomain,
              day: r.key.day,
              outcome: "sent",
              queued: n,
              detail: undefined
            }
          }
          yield* Metric.incrementBy(reportsCounter, reports)
          yield* Metric.incrementBy(messagesCounter, messages)
          yield* Metric.incrementBy(keysCounters.sent, reports)
        }
        return outcomes
      }).pipe(
        Effect.withLogSpan("report"),
        Effect.withSpan("Reporter.sendBatch", { attributes: { phase, keys: keys.length } })
      )

    return sendBatch satisfies BatchSender
  })

/** One key through the local batch sender: what the fleet's key entity runs. */
export const makeKeySender = (config: ReporterConfig) =>
  Effect.map(
    makeBatchSender(config),
    (sendBatch): KeySender =>
      (phase, policyDomain, day, retries, inBoth) =>
        Effect.map(sendBatch(phase, [{ policyDomain, day, inBoth, send: true }], retries), ([r]) => r!)
  )

/** A batch sender that hands each key to `sendKey` (in the fleet: a message to the key's entity). */
export const batchOfKeys =
  (sendKey: KeySender, options?: { readonly concurrency?: number }): BatchSender =>
  (phase, keys, retries, turn = Effect.void) =>
    Effect.zipLeft(
      Effect.forEach(keys, (k) => sendKey(phase, k.policyDomain, k.day, retries, k.inBoth), {
        concurrency: options?.concurrency ?? 8
      }),
      turn
    )

/**
 * The round of docs/design.md#the-daily-round (plan, pacing, the two phases, cleanup) around a batch
 * sender: the local one (`makeBatchSender`) or, in the fleet, `batchOfKeys` over the keys' entities.
 */
export const makeRound = (config: ReporterConfig, sendBatch: BatchSender) =>
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
         * docs/design.md#pacing: wait `gap` before every send but the very first of the round; sends run
         * concurrently so pacing does not depend on processing time. Unpaced, the keys go in batches of
         * BATCH (one read, one commit each), PIPELINE batches at once so the compose pool always has work
         * while the main thread reads and commits; commits stay in key order.
         */
        const runPhase = (phase: Phase, keys: ReadonlyArray<RoundPlan.PlannedKey>, offset: number) => {
          const notRequested = (key: RoundPlan.PlannedKey) => done(phase, key.policyDomain, key.day, "not-requested")
          if (paced) {
            let slot = offset
            const tasks = keys.map((key) => {
              if (!key.send) return notRequested(key)
              const delay = Duration.times(gap, slot++)
              return Effect.gen(function* () {
                if (Duration.toMillis(delay) > 0) yield* Effect.sleep(delay)
                const [report] = yield* sendBatch(phase, [key], retriesLeft(yield* Clock.currentTimeMillis))
                return report!
              })
            })
            return Effect.all(tasks, { concurrency: "unbounded" })
          }
          return Effect.gen(function* () {
            const toSend = keys.filter((k) => k.send)
            const batches = Array.from({ length: Math.ceil(toSend.length / BATCH) }, (_, i) =>
              toSend.slice(i * BATCH, (i + 1) * BATCH)
            )
            const commits = yield* Effect.forEach(batches, () => Deferred.make<void>())
            const sent = yield* Effect.forEach(
              batches,
              (batch, i) =>
                Effect.gen(function* () {
                  const now = yield* Clock.currentTimeMillis
                  const turn = i === 0 ? Effect.void : Deferred.await(commits[i - 1]!)
                  return yield* sendBatch(phase, batch, retriesLeft(now), turn)
                }).pipe(Effect.ensuring(Deferred.succeed(commits[i]!, undefined))),
              { concurrency: PIPELINE }
            )
            const byKey = new Map(sent.flat().map((r, i) => [toSend[i]!, r]))
            return yield* Effect.forEach(keys, (key) => {
              const r = byKey.get(key)
              return r === undefined ? notRequested(key) : Effect.succeed(r)
            })
          })
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
  Effect.flatMap(makeBatchSender(config), (sendBatch) => makeRound(config, sendBatch))

export const layer = (config: ReporterConfig) => Layer.effect(Reporter, make(config))
