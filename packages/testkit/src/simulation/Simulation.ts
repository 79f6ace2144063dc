/**
 * The simulation kit: what the project's own TestClock simulations use, for tests of applications
 * that embed tlsrpt. A `:memory:` store, the in-memory DNS layer behind a `Ref` the test changes, the
 * real report composer with an RSA DKIM key, the capturing transport, the supervised schedule with a
 * queue of finished rounds, and `nextRound`, which moves TestClock only to the earliest pending sleep
 * (it never jumps over one, so pacing and jitter run exactly as in production).
 *
 * ```ts
 * const dns = yield* Ref.make<DnsAnswers>(new Map([["_smtp._tls.example.com", record("mailto:r@example.com")]]))
 * const env = yield* makeEnv({ submitter: "sender.example", dns })
 * // … inside Effect.provide(env): record rows or outcomes, then
 * const { rounds } = yield* startSchedule(defaultConfig)
 * const summary = yield* nextRound(rounds)
 * const sent = yield* deliverAndParse          // [{ to, kind, report, raw }]
 * ```
 */
import { type Day, Domain, PolicyResult, type Report, ReportMessage } from "@tlsrpt/core"
import { Dns, type TestAnswer, TlsrptLookup } from "@tlsrpt/dns"
import {
  Delivery,
  dkimKeyFromPem,
  generateDkimKeyPair,
  makeReportMail,
  makeSubmitter,
  ReportMail,
  type ReportMailService,
  TestTransport,
  Transport
} from "@tlsrpt/mail"
import { Reporter, type ReporterConfig, ReporterLive, ReporterSchedule, type RoundSummary } from "@tlsrpt/reporter"
import { Store } from "@tlsrpt/store"
import { appendFileSync } from "node:fs"
import {
  Chunk,
  Clock,
  Config,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Queue,
  Random,
  type Ref,
  TestClock
} from "effect"

export type DnsAnswers = ReadonlyMap<string, TestAnswer>

/** One RSA-2048 key for the whole suite: generating keys is the slow part. */
const generateDkimKeyPairCached = Effect.runSync(Effect.cached(generateDkimKeyPair("rsa-sha256")))

/** The DKIM selector the environment signs with, and the TXT record of its key (for verifying reports). */
export const DKIM_SELECTOR = "testsel"
export const dkimDnsRecord: Effect.Effect<string> = Effect.map(generateDkimKeyPairCached, (pair) => pair.dnsRecord)

export const makeEnv = (options: {
  readonly submitter: string
  readonly dns: Ref.Ref<DnsAnswers>
  /** Wraps the real composer, e.g. to make it fail for one domain. */
  readonly wrapMail?: (mail: ReportMailService) => ReportMailService
}) =>
  Effect.gen(function* () {
    const pair = yield* generateDkimKeyPairCached
    const submitter = Either.getOrThrow(makeSubmitter({ domain: options.submitter }))
    const key = Either.getOrThrow(
      dkimKeyFromPem({
        domain: options.submitter,
        selector: DKIM_SELECTOR,
        algorithm: "rsa-sha256",
        privateKeyPem: pair.privateKeyPem,
        file: "(generated)"
      })
    )
    const lookup = TlsrptLookup.layer.pipe(Layer.provide(Dns.layerTestRef(options.dns)))
    const wrap = options.wrapMail
    const mail =
      wrap === undefined
        ? ReportMail.layer({ submitter, dkim: [key] })
        : Layer.effect(ReportMail, Effect.map(makeReportMail({ submitter, dkim: [key] }), wrap))
    const transport = Transport.layerTest()
    const store = Store.layerMemory
    return Delivery.layerManual().pipe(Layer.provideMerge(Layer.mergeAll(store, lookup, mail, transport)))
  })

/** The schedule loop, forked, with a queue that receives every finished round's summary. */
export const startSchedule = (config: ReporterConfig, seed = 42) =>
  Effect.gen(function* () {
    const rounds = yield* Queue.unbounded<RoundSummary>()
    const reporter = yield* ReporterLive.make(config)
    const tracked = Reporter.of({
      runRound: (day, o) => reporter.runRound(day, o).pipe(Effect.tap((s) => Queue.offer(rounds, s)))
    })
    const fiber = yield* ReporterSchedule.loop(config).pipe(
      Effect.provideService(Reporter, tracked),
      Effect.withRandom(Random.make(seed)),
      Effect.fork
    )
    return { rounds, fiber }
  })

/** Delivers the outbox through the capturing transport and parses every new message back. */
export const deliverAndParse = Effect.gen(function* () {
  const delivery = yield* Delivery
  const transport = yield* TestTransport
  const before = (yield* transport.sent).length
  yield* delivery.runOnce
  const sent = (yield* transport.sent).slice(before)
  const out: Array<{
    readonly to: string
    readonly kind: string
    readonly report: Report.Report
    readonly raw: Uint8Array
  }> = []
  const dump = yield* Config.option(Config.string("TLSRPT_DUMP_MESSAGES"))
  if (Option.isSome(dump) && sent.length > 0) {
    const text = sent.map((m) => `== ${m.kind} ${m.destination}\n${withoutDkimSignature(m.payload)}\n`).join("")
    yield* Effect.sync(() => appendFileSync(dump.value, text, "latin1"))
  }
  for (const m of sent) {
    const report =
      m.kind === "mailto" ? yield* ReportMessage.parse(m.payload) : yield* ReportMessage.parseJsonOrGzip(m.payload)
    out.push({ to: m.destination, kind: m.kind, report, raw: m.payload })
  }
  return out
})

/**
 * A message as text (latin1, byte for byte) without its DKIM-Signature field, folded lines included:
 * the suite signs with a fresh key per run, everything else must stay byte-identical across changes
 * to composition (`TLSRPT_DUMP_MESSAGES=FILE` appends every delivered message so, see the README).
 */
export const withoutDkimSignature = (raw: Uint8Array): string => {
  const text = Buffer.from(raw).toString("latin1")
  const end = text.indexOf("\r\n\r\n")
  const head = end === -1 ? text : text.slice(0, end + 2)
  return head.replace(/^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*/gim, "") + (end === -1 ? "" : text.slice(end + 2))
}

/** Recipient → reports, the shape of mox's `haveReports`. */
export const byRecipient = (sent: ReadonlyArray<{ readonly to: string; readonly report: Report.Report }>) => {
  const map: Record<string, Array<Report.Report>> = {}
  for (const s of sent) map[s.to] = [...(map[s.to] ?? []), s.report]
  return map
}

export const domain = (s: string) => Domain.unsafeMake(s)

/** Lets the real event loop run: composing and signing are real async work that TestClock cannot see. */
const realTick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Step-locks the simulation until the next round finishes: let the real event loop run (composing and
 * signing are real async work TestClock cannot see), and when every fiber is asleep, move TestClock
 * exactly to the earliest pending sleep. Never jumps over a sleep, whatever the pacing.
 */
export const nextRound = (rounds: Queue.Queue<RoundSummary>, options?: { readonly limit?: Duration.DurationInput }) =>
  Effect.gen(function* () {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(options?.limit ?? "3 days")
    for (let idle = 0; idle < 10_000; ) {
      const got = yield* Queue.poll(rounds)
      if (Option.isSome(got)) return got.value
      const sleeps = yield* TestClock.sleeps()
      const now = yield* Clock.currentTimeMillis
      const wake = Chunk.reduce(sleeps, Number.POSITIVE_INFINITY, (m, s) => Math.min(m, s))
      if (wake <= now) {
        yield* realTick
        idle++
      } else if (idle < 3) {
        // give pending async work a few turns before moving time
        yield* realTick
        idle++
      } else if (wake <= deadline) {
        yield* TestClock.setTime(wake)
        idle = 0
      } else {
        yield* realTick
        idle++
      }
    }
    return yield* Effect.dieMessage("no round finished")
  })

/** A result row for simulations: one policy result with `success` and `failure` sessions. */
export const resultRow = (input: {
  readonly policyDomain: string
  readonly recipientDomain: string
  readonly day: Day.Day
  readonly success?: number
  readonly failure?: number
  readonly sendReport?: boolean
}) => {
  const policyDomain = Domain.unsafeMake(input.policyDomain)
  const recipientDomain = Domain.unsafeMake(input.recipientDomain)
  const isHost = policyDomain.ascii !== recipientDomain.ascii
  const failure = input.failure ?? 0
  return {
    policyDomain,
    day: input.day,
    recipientDomain,
    isHost,
    sendReport: input.sendReport ?? true,
    results: [
      PolicyResult.make(isHost ? "tlsa" : "sts", policyDomain.ascii, {
        policyString: isHost ? ["3 1 1 abcd"] : ["version: STSv1", "mode: enforce"],
        success: input.success ?? 1,
        failure,
        failureDetails:
          failure > 0
            ? [
                {
                  resultType: "certificate-expired" as const,
                  receivingMxHostname: isHost ? policyDomain.ascii : `mx.${recipientDomain.ascii}`,
                  failedSessionCount: failure
                }
              ]
            : []
      })
    ]
  }
}

export const record = (...addresses: ReadonlyArray<string>) => [`v=TLSRPTv1; rua=${addresses.join(",")}`]
