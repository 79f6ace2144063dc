/**
 * mox's reference test (docs/design.md#reference-scenarios) on TestClock: the 6 scenarios,
 * step-locked. For each: insert the rows, start the schedule (its first round runs at once for the
 * day that just ended), let the paced round finish, deliver and parse every message back; then the
 * next two daily rounds send nothing and no result row is left.
 *
 * mox ignores `https:` reporting URIs; we support them. Every scenario runs twice: with `https: false`
 * (mox's expectations exactly) and with the default config (https on), where the mails must be the
 * same and ☺.example's `https://ignored.example/` gets its phase-1 report as a POST (captured by the
 * test transport). The phase-2 skip compares addresses per destination kind
 * (docs/design.md#phase-2-skip-per-kind), so https on adds no mail.
 */
import { assert, describe, it } from "@effect/vitest"
import { Report } from "@tlsrpt/core"
import type { TestAnswer } from "@tlsrpt/dns"
import { defaultConfig, type ReporterConfig } from "@tlsrpt/reporter"
import { ResultStore } from "@tlsrpt/store"
import { Seed } from "@tlsrpt/testkit"
import { Duration, Effect, Fiber, Ref, TestClock } from "effect"
import { byRecipient, deliverAndParse, makeEnv, nextRound, startSchedule } from "@tlsrpt/testkit/simulation"

// The rows are of 2024-01-09; the process starts shortly after that day ended.
const START = Date.parse("2024-01-10T00:05:00Z")
const MAILHOST = "_smtp._tls.mailhost.xn--74h.example."

const initialDns = (): Map<string, TestAnswer> => new Map(Object.entries(Seed.fixtures.dns_txt_initial))

const toJson = (reports: Record<string, ReadonlyArray<Report.Report>>) =>
  Object.fromEntries(
    Object.entries(reports)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => [k, v.map(Report.toJson)])
  )

interface Scenario {
  readonly name: string
  readonly dns: (m: Map<string, TestAnswer>) => void
  readonly rows: "all" | "first 2"
  readonly withoutFailures?: boolean
  readonly config?: Partial<ReporterConfig>
  readonly suppress?: ReadonlyArray<{
    readonly address: string
    readonly untilOffset: Duration.Duration
    readonly expired?: boolean
  }>
  readonly expect: Record<string, ReadonlyArray<Report.Report>>
  /** With https on: the POSTs by URL. */
  readonly https: Record<string, ReadonlyArray<Report.Report>>
}

const HTTPS = "https://ignored.example/"

const r1 = Seed.report("report1")
const r2 = Seed.report("report2")
const r3 = Seed.report("report3")
const SUPPRESSIONS = [
  { address: "tls-reports@xn--74h.example", untilOffset: Duration.minutes(-1) },
  { address: "tls-reports1@mailhost.xn--74h.example", untilOffset: Duration.minutes(1) },
  { address: "tls-reports3@mailhost.xn--74h.example", untilOffset: Duration.days(31) }
]

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "1: recipient domain and MX host each get their report; https, no-record and send-report=false rows give nothing",
    dns: () => {},
    rows: "all",
    expect: {
      "tls-reports@xn--74h.example": [r1],
      "tls-reports1@mailhost.xn--74h.example": [r2],
      "tls-reports2@mailhost.xn--74h.example": [r2],
      "tls-reports3@mailhost.xn--74h.example": [r2]
    },
    https: { [HTTPS]: [r1] }
  },
  {
    name: "2: MX host with the recipient domain's rua: only the recipient domain gets a report",
    dns: (m) => m.set(MAILHOST, ["v=TLSRPTv1; rua=mailto:tls-reports@xn--74h.example"]),
    rows: "first 2",
    expect: { "tls-reports@xn--74h.example": [r1] },
    https: { [HTTPS]: [r1] }
  },
  {
    name: "3: phase 2 skips rows already reported to identical addresses (report3 after report1)",
    dns: (m) => {
      m.set(MAILHOST, ["v=TLSRPTv1; rua=mailto:tls-reports@xn--74h.example"])
      m.set("_smtp._tls.sharedsender.example.", ["v=TLSRPTv1; rua=mailto:tls-reports@xn--74h.example"])
    },
    rows: "all",
    expect: { "tls-reports@xn--74h.example": [r1, r3] },
    https: { [HTTPS]: [r1] }
  },
  {
    name: "4: active suppressions skip recipients, an expired one does not",
    dns: () => {},
    rows: "all",
    suppress: SUPPRESSIONS,
    expect: { "tls-reports@xn--74h.example": [r1], "tls-reports2@mailhost.xn--74h.example": [r2] },
    https: { [HTTPS]: [r1] }
  },
  {
    name: "5: without failures nothing is sent, and rows are still cleaned up",
    dns: () => {},
    rows: "all",
    withoutFailures: true,
    expect: {},
    https: {}
  },
  {
    name: "6: forAllSuccess sends success-only reports (suppressions of scenario 4 still active)",
    dns: () => {},
    rows: "all",
    withoutFailures: true,
    suppress: SUPPRESSIONS,
    config: { forAllSuccess: true },
    expect: {
      "tls-reports@xn--74h.example": [Seed.report("report1", { withoutFailures: true })],
      "tls-reports2@mailhost.xn--74h.example": [Seed.report("report2", { withoutFailures: true })]
    },
    https: { [HTTPS]: [Seed.report("report1", { withoutFailures: true })] }
  }
]

describe.each([
  { label: "https: false", https: false },
  { label: "default config, https on", https: true }
])("mox reference test (docs/design.md#reference-scenarios) on TestClock, $label", ({ https }) => {
  for (const sc of scenarios) {
    it.effect(sc.name, () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(START)
        const dnsMap = initialDns()
        sc.dns(dnsMap)
        const dns = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(dnsMap)
        const env = yield* makeEnv({ submitter: Seed.fixtures.submitter.domain, dns })
        yield* Effect.gen(function* () {
          const store = yield* ResultStore
          const rows = Seed.rows({ withoutFailures: sc.withoutFailures ?? false })
          yield* store.addResults(sc.rows === "all" ? rows : rows.slice(0, 2))
          for (const s of sc.suppress ?? []) {
            yield* store.suppressAdd({ address: s.address, until: new Date(START + Duration.toMillis(s.untilOffset)) })
          }
          // mox's test stubs sleepBetween (no pacing): scenario 4's one-minute suppression must still be
          // active when phase 2 sends. maxGap 0 does the same here.
          const config: ReporterConfig = { ...defaultConfig, https, maxGap: Duration.zero, ...sc.config }
          const { rounds, fiber } = yield* startSchedule(config)

          // Run 1 starts at once, for the day that just ended.
          const first = yield* nextRound(rounds, { limit: config.window })
          assert.strictEqual(first.day, "2024-01-09")
          const delivered = yield* deliverAndParse
          const sent = delivered.filter((s) => s.kind === "mailto")
          assert.deepStrictEqual(toJson(byRecipient(sent)), toJson(sc.expect))
          const posted = delivered.filter((s) => s.kind !== "mailto")
          assert.isTrue(posted.every((s) => s.kind === "https"))
          assert.deepStrictEqual(toJson(byRecipient(posted)), toJson(https ? sc.https : {}))
          // docs/design.md#to-lists-only-the-recipients: the To header lists only the addresses the message is sent to.
          const active = (sc.suppress ?? []).filter((x) => Duration.toMillis(x.untilOffset) > 0).map((x) => x.address)
          for (const s of sent) {
            const header = /^To:(.*(?:\r\n[ \t].*)*)/im.exec(Buffer.from(s.raw).toString("latin1"))?.[1] ?? ""
            assert.include(header, s.to)
            for (const a of active) assert.notInclude(header, a)
          }

          // Runs 2 and 3: the next midnights plus jitter; nothing more is sent.
          for (const expectedDay of ["2024-01-10", "2024-01-11"]) {
            const next = yield* nextRound(rounds, { limit: Duration.sum(Duration.days(1), config.jitterMax) })
            assert.strictEqual(next.day, expectedDay)
            assert.strictEqual(next.queued, 0)
            assert.deepStrictEqual(yield* deliverAndParse, [])
          }
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual(yield* store.listResults(), [])
        }).pipe(Effect.provide(env))
      })
    )
  }
})
