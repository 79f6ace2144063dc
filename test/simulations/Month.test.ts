/**
 * 30 simulated days of random (seeded) traffic through the supervised daily schedule on TestClock,
 * with flaky DNS, checking the invariants of issue 6:
 * - every (policy domain, day, reporting address) whose results hold a failure gets exactly one report;
 * - no row older than the stale limit remains after a round;
 * - the outbox holds no duplicate.
 */
import { assert, describe, it } from "@effect/vitest"
import { Day } from "@tlsrpt/core"
import type { TestAnswer } from "@tlsrpt/dns"
import { defaultConfig, RoundPlan } from "@tlsrpt/reporter"
import { ResultStore } from "@tlsrpt/store"
import { Effect, Fiber, Ref, TestClock } from "effect"
import { deliverAndParse, makeEnv, nextRound, record, resultRow, startSchedule } from "@tlsrpt/testkit/simulation"

/** mulberry32: a tiny seeded PRNG, so the traffic is the same on every run. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const SUBMITTER = "reports.example"
const DAYS = 30
const FIRST = "2024-03-01" as Day.Day
// r0..r7 deliver through DANE MX hosts m0..m3 (host rows); r8..r11 have no DANE host; r12..r14 have no
// TLSRPT record. Flaky DNS hits only keys whose rows no other key shares (MX hosts, and r8..r11), so
// the expected reports follow from the traffic alone.
const rcpt = Array.from({ length: 15 }, (_, i) => `r${i}.example`)
const mx = Array.from({ length: 4 }, (_, i) => `m${i}.example`)
const mxOf = (i: number) => (i < 8 ? mx[i % 4] : undefined)

describe("a simulated month", () => {
  it.effect("30 days of random traffic with flaky DNS keep the invariants", () =>
    Effect.gen(function* () {
      const rand = prng(20240301)
      const dnsBase = new Map<string, TestAnswer>()
      for (const d of [...rcpt.slice(0, 12), ...mx]) dnsBase.set(`_smtp._tls.${d}.`, record(`mailto:tlsrpt@${d}`))
      const dns = yield* Ref.make<ReadonlyMap<string, TestAnswer>>(dnsBase)
      yield* TestClock.setTime(Day.startMillis(FIRST) + 10 * 60_000)
      const env = yield* makeEnv({ submitter: SUBMITTER, dns })

      yield* Effect.gen(function* () {
        const store = yield* ResultStore
        const { rounds, fiber } = yield* startSchedule(defaultConfig)
        yield* nextRound(rounds) // the start-up round, for the day before FIRST: nothing
        const expected = new Set<string>()
        const delivered: Array<string> = []
        let flakyYesterday = new Set<string>()
        let keptKeys = 0

        for (let n = 0; n < DAYS + 3; n++) {
          const day = Day.addDays(FIRST, n)
          if (n < DAYS) {
            yield* TestClock.setTime(Day.startMillis(day) + 12 * 3_600_000)
            const rows = []
            const mxFailed = new Set<string>()
            for (let i = 0; i < rcpt.length; i++) {
              if (rand() < 0.4) continue
              const r = rcpt[i]!
              const rf = rand() < 0.3 ? 1 + Math.floor(rand() * 5) : 0
              const m = mxOf(i)
              const mf = m !== undefined && rand() < 0.2 ? 1 : 0
              rows.push(resultRow({ policyDomain: r, recipientDomain: r, day, success: 10, failure: rf }))
              if (m !== undefined) {
                rows.push(resultRow({ policyDomain: m, recipientDomain: r, day, success: 10, failure: mf }))
                if (mf > 0) mxFailed.add(m)
                // the recipient domain's report includes its MX host's DANE results (docs/design.md#reference-scenarios)
                if (m !== undefined && i < 12 && (rf > 0 || mf > 0)) expected.add(`${day}.${r} tlsrpt@${r}`)
              } else if (i < 12 && rf > 0) expected.add(`${day}.${r} tlsrpt@${r}`)
              // the MX host's own key: present once any recipient domain used it
            }
            for (const m of mxFailed) expected.add(`${day}.${m} tlsrpt@${m}`)
            yield* store.addResults(rows)
          }
          // The next round's DNS: some MX hosts and DANE-less recipient domains fail temporarily for the
          // whole round (never two rounds in a row, so their rows outlive the stale limit).
          const flaky = new Set([...mx, ...rcpt.slice(8, 12)].filter((d) => !flakyYesterday.has(d) && rand() < 0.15))
          const answers = new Map(dnsBase)
          for (const d of flaky) answers.set(`_smtp._tls.${d}.`, { error: "servfail" })
          yield* Ref.set(dns, answers)
          flakyYesterday = flaky

          const summary = yield* nextRound(rounds)
          assert.strictEqual(summary.day, day)
          for (const k of summary.kept) assert.isTrue(flaky.has(k.policyDomain), `kept ${k.policyDomain}`)
          keptKeys += summary.kept.length
          for (const s of yield* deliverAndParse) {
            const [date, rest] = [s.report.reportId.slice(0, 8), s.report.reportId.slice(9)]
            const d = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}`
            delivered.push(`${d}.${rest.split("@")[0]} ${s.to}`)
          }
          // No row older than the stale limit remains.
          const rows = yield* store.listResults()
          for (const r of rows) assert.isTrue(r.day >= RoundPlan.staleBefore(day), `stale row ${r.day}`)
        }
        yield* Fiber.interrupt(fiber)

        // Exactly one report per (policy domain, day, address) whose results hold a failure.
        assert.strictEqual(new Set(delivered).size, delivered.length, "a report was delivered twice")
        assert.deepStrictEqual([...delivered].sort(), [...expected].sort())
        assert.isTrue(expected.size > 100)
        assert.isTrue(keptKeys > 5, `only ${keptKeys} keys hit a temporary DNS error`)
        // The outbox holds no duplicate.
        const outbox = yield* store.listOutbox()
        const ids = outbox.map((m) => `${m.reportId} ${m.destination}`)
        assert.strictEqual(new Set(ids).size, ids.length)
        assert.strictEqual(outbox.length, delivered.length)
        assert.deepStrictEqual(yield* store.listResults(), [])
      }).pipe(Effect.provide(env))
    })
  )
})
