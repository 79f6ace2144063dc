import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Duration, Effect, Either, FastCheck as fc, Option, TestClock } from "effect"
import { type NewOutboxMessage, Outbox } from "../src/Outbox.js"
import { OutboxSignal } from "../src/OutboxSignal.js"
import { type NewResultRow, ResultStore, type ResultRow } from "../src/ResultStore.js"
import * as Store from "../src/Store.js"
import { SuppressionList } from "../src/SuppressionList.js"
import { dialects } from "./Dialects.js"
import { seedDay, seedRows } from "./Seed.js"

const D = Domain.unsafeMake
const day = Either.getOrThrow(Day.parse("2024-01-09"))
const MINUTE = 60_000

const expired = (count: number): PolicyResult.FailureDetails => ({
  resultType: "certificate-expired",
  sendingMtaIp: "192.0.2.1",
  receivingMxHostname: "mx.a.example",
  receivingIp: "198.51.100.1",
  failedSessionCount: count
})
const starttls = (count: number): PolicyResult.FailureDetails => ({
  resultType: "starttls-not-supported",
  receivingMxHostname: "mx.a.example",
  failedSessionCount: count
})

const sts = (success: number, failure: number, details: ReadonlyArray<PolicyResult.FailureDetails> = []) =>
  PolicyResult.make("sts", "a.example", {
    policyString: ["version: STSv1", "mode: enforce"],
    mxHost: ["mx.a.example"],
    success,
    failure,
    failureDetails: details
  })
const tlsa = (success: number, failure: number) => PolicyResult.make("tlsa", "mx.a.example", { success, failure })

const row = (fields: Partial<NewResultRow> & Pick<NewResultRow, "results">): NewResultRow => ({
  policyDomain: D("a.example"),
  day,
  recipientDomain: D("a.example"),
  isHost: false,
  sendReport: true,
  ...fields
})

const message = (destination: string, fields: Partial<NewOutboxMessage> = {}): NewOutboxMessage => ({
  kind: "mailto",
  destination,
  envelopeFrom: "postmaster@sender.example",
  payload: new TextEncoder().encode(`To: <${destination}>\r\n\r\nreport\r\n`),
  reportId: "20240109.xn--74h.example@sender.example",
  policyDomain: "xn--74h.example",
  day,
  ...fields
})

const all = Effect.flatMap(ResultStore, (store) => store.listResults())
const only = Effect.map(all, (rows) => {
  assert.strictEqual(rows.length, 1)
  return rows[0]!
})

for (const db of dialects) {
  describe.skipIf(db.skip)(db.label, () => {
    describe("ResultStore.addResults (docs/design.md#row-merge)", () => {
      it.effect("inserts a new key with its results as given, created = updated = now", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* TestClock.setTime(1_000)
          yield* store.addResults([row({ isHost: true, sendReport: false, results: [sts(10, 3, [expired(3)])] })])
          const r = yield* only
          assert.deepStrictEqual(r, {
            id: 1,
            policyDomain: "a.example",
            day,
            recipientDomain: "a.example",
            isHost: true,
            sendReport: false,
            sentToRecipientDomain: false,
            sentToPolicyDomain: false,
            recipientDomainReportingAddresses: [],
            results: [sts(10, 3, [expired(3)])],
            created: new Date(1_000),
            updated: new Date(1_000)
          })
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("merges counts and failure details into the existing key, appending new policies", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([row({ results: [sts(10, 3, [expired(3)])] })])
          yield* store.addResults([row({ results: [tlsa(2, 0), sts(5, 2, [starttls(1), expired(1)])] })])
          yield* store.addResults([row({ results: [sts(1, 1, [starttls(1)])] })])
          const r = yield* only
          assert.deepStrictEqual(r.results, [sts(16, 6, [expired(4), starttls(2)]), tlsa(2, 0)])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("isHost: last writer wins, across calls and within one call (docs/design.md#row-merge)", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([row({ isHost: true, results: [] })])
          assert.isTrue((yield* only).isHost)
          yield* store.addResults([row({ isHost: false, results: [] })])
          assert.isFalse((yield* only).isHost)
          // A host result first, the recipient-domain result last (docs/design.md#row-merge): the row ends up not a host row.
          yield* store.addResults([row({ isHost: true, results: [] }), row({ isHost: false, results: [] })])
          assert.isFalse((yield* only).isHost)
          yield* store.addResults([row({ isHost: false, results: [] }), row({ isHost: true, results: [] })])
          assert.isTrue((yield* only).isHost)
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("sendReport is sticky true", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([row({ sendReport: false, results: [] })])
          assert.isFalse((yield* only).sendReport)
          yield* store.addResults([row({ sendReport: true, results: [] })])
          assert.isTrue((yield* only).sendReport)
          yield* store.addResults([row({ sendReport: false, results: [] }), row({ sendReport: false, results: [] })])
          assert.isTrue((yield* only).sendReport)
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("a later add leaves the sent flags, reporting addresses and created alone; updated = now", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* TestClock.setTime(1_000)
          yield* store.addResults([row({ results: [sts(1, 1)] })])
          yield* store.markSentAndEnqueueAll([
            {
              mark: {
                phase: "recipient-domain",
                recipientDomain: "a.example",
                day,
                reportingAddresses: ["mailto:r@a.example"]
              },
              messages: []
            }
          ])
          yield* store.markSentAndEnqueueAll([
            { mark: { phase: "policy-domain", policyDomain: "a.example", day }, messages: [] }
          ])
          yield* TestClock.setTime(5_000)
          yield* store.addResults([row({ sendReport: false, results: [sts(1, 0)] })])
          const r = yield* only
          assert.isTrue(r.sentToRecipientDomain)
          assert.isTrue(r.sentToPolicyDomain)
          assert.deepStrictEqual(r.recipientDomainReportingAddresses, ["mailto:r@a.example"])
          assert.deepStrictEqual(r.results, [sts(2, 1)])
          assert.deepStrictEqual([r.created, r.updated], [new Date(1_000), new Date(5_000)])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("keys differ by policy domain, day and recipient domain; Unicode input is stored as A-labels", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([
            row({ policyDomain: D("☺.example"), recipientDomain: D("☺.example"), results: [sts(1, 0)] }),
            row({ policyDomain: D("XN--74H.example."), recipientDomain: D("xn--74h.example"), results: [sts(1, 0)] }),
            row({ policyDomain: D("xn--74h.example"), recipientDomain: D("b.example"), results: [sts(1, 0)] }),
            row({ policyDomain: D("xn--74h.example"), day: Day.addDays(day, 1), results: [sts(1, 0)] })
          ])
          const rows = yield* all
          assert.deepStrictEqual(
            rows.map((r) => [
              r.day,
              r.policyDomain,
              r.recipientDomain,
              r.results[0]!.summary.totalSuccessfulSessionCount
            ]),
            [
              [day, "xn--74h.example", "b.example", 1],
              [day, "xn--74h.example", "xn--74h.example", 2],
              [Day.addDays(day, 1), "xn--74h.example", "a.example", 1]
            ]
          )
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("an empty call does nothing", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults([])
          assert.deepStrictEqual(yield* all, [])
        }).pipe(Effect.provide(db.layer))
      )

      // The store groups a call's rows by key; the spec processes them one by one. Same outcome, ids included.
      const resultArb = fc
        .record({
          type: fc.constantFrom("sts" as const, "tlsa" as const),
          domain: fc.constantFrom("a.example", "mx.a.example"),
          success: fc.nat(5),
          failure: fc.nat(5),
          details: fc.array(fc.constantFrom(expired(1), expired(2), starttls(1)), { maxLength: 3 })
        })
        .map((r) =>
          PolicyResult.make(r.type, r.domain, { success: r.success, failure: r.failure, failureDetails: r.details })
        )
      const rowArb = fc
        .record({
          policyDomain: fc.constantFrom(D("a.example"), D("mx.a.example")),
          recipientDomain: fc.constantFrom(D("a.example"), D("b.example")),
          isHost: fc.boolean(),
          sendReport: fc.boolean(),
          results: fc.array(resultArb, { maxLength: 3 })
        })
        .map((r): NewResultRow => ({ ...r, day }))

      it.effect.prop(
        "a call with many rows equals one call per row, in order",
        [
          fc.array(rowArb, { maxLength: 16 }),
          fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 16, maxLength: 16 })
        ],
        ([rows, sizes]) =>
          Effect.gen(function* () {
            const oneByOne = yield* Effect.gen(function* () {
              const store = yield* ResultStore
              for (const r of rows) yield* store.addResults([r])
              return yield* store.listResults()
            }).pipe(Effect.provide(db.layer))
            const batched = yield* Effect.gen(function* () {
              const store = yield* ResultStore
              let i = 0
              for (const size of sizes) {
                yield* store.addResults(rows.slice(i, i + size))
                i += size
              }
              yield* store.addResults(rows.slice(i))
              return yield* store.listResults()
            }).pipe(Effect.provide(db.layer))
            assert.deepStrictEqual(batched, oneByOne)
          }),
        { fastCheck: { numRuns: db.propertyRuns } }
      )
    })

    describe("ResultStore queries (docs/design.md#ordering, on the seed's rows)", () => {
      const ids = (rows: ReadonlyArray<ResultRow>) => rows.map((r) => r.id)
      /** The round's fetch of one key: phase 1 by recipient domain, phase 2 by policy domain. */
      const rowsOf = (phase: "recipient-domain" | "policy-domain", domain: string, d: Day.Day) =>
        Effect.flatMap(ResultStore, (store) =>
          Effect.map(store.rowsOfKeys(phase, [{ domain, day: d }]), (rows) => rows[0]!)
        )

      it.effect("phase 2 reads by recipient domain then id; phase 1 in insertion order", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(seedRows)

          // Row 3 (sharedsender.example) was added after row 2 (xn--74h.example) but sorts first.
          const phase2 = yield* rowsOf("policy-domain", "mailhost.xn--74h.example", seedDay)
          assert.deepStrictEqual(ids(phase2), [3, 2])
          assert.deepStrictEqual(
            phase2.map((r) => r.recipientDomain),
            ["sharedsender.example", "xn--74h.example"]
          )
          assert.deepStrictEqual(phase2[0]!.results, seedRows[2]!.results)

          // The sts row (1) before the mailhost tlsa row (2), though "mailhost…" sorts before "xn--74h…".
          const phase1 = yield* rowsOf("recipient-domain", "xn--74h.example", seedDay)
          assert.deepStrictEqual(ids(phase1), [1, 2])
          assert.deepStrictEqual(
            phase1.map((r) => [r.policyDomain, r.isHost, r.sendReport]),
            [
              ["xn--74h.example", false, true],
              ["mailhost.xn--74h.example", true, false]
            ]
          )
          assert.deepStrictEqual(
            phase1.map((r) => r.results),
            [seedRows[0]!.results, seedRows[1]!.results]
          )

          assert.deepStrictEqual(
            yield* rowsOf("policy-domain", "mailhost.xn--74h.example", Day.addDays(seedDay, 1)),
            []
          )
          assert.deepStrictEqual(yield* rowsOf("recipient-domain", "mailhost.xn--74h.example", seedDay), [])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("the same order when the rows come in one call each", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          for (const r of seedRows) yield* store.addResults([r])
          assert.deepStrictEqual(ids(yield* rowsOf("policy-domain", "mailhost.xn--74h.example", seedDay)), [3, 2])
          assert.deepStrictEqual(ids(yield* rowsOf("recipient-domain", "xn--74h.example", seedDay)), [1, 2])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("keysUpTo gives every key with day ≤ D in id order (docs/design.md#key-gathering)", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(seedRows)
          yield* store.addResults([row({ day: Day.addDays(seedDay, 1), results: [] })])
          yield* store.addResults([row({ day: Day.addDays(seedDay, -1), results: [] })])
          const keys = yield* store.keysUpTo(seedDay)
          assert.deepStrictEqual(
            keys.map((k) => [k.policyDomain, k.day, k.recipientDomain, k.sendReport]),
            [
              ["xn--74h.example", seedDay, "xn--74h.example", true],
              ["mailhost.xn--74h.example", seedDay, "xn--74h.example", false],
              ["mailhost.xn--74h.example", seedDay, "sharedsender.example", true],
              ["mailhost.noreport.example", seedDay, "noreport.example", false],
              ["mailhost.norua.example", seedDay, "norua.example", false],
              ["mailhost.notlsrpt.example", seedDay, "notlsrpt.example", true],
              ["a.example", Day.addDays(seedDay, -1), "a.example", true]
            ]
          )
          assert.strictEqual((yield* store.keysUpTo(Day.addDays(seedDay, 1))).length, 8)
          assert.strictEqual((yield* store.keysUpTo(Day.addDays(seedDay, -2))).length, 0)
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("listResults sorts by day, policy domain, recipient domain and filters on day and either domain", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(seedRows)
          yield* store.addResults([
            row({
              policyDomain: D("xn--74h.example"),
              recipientDomain: D("xn--74h.example"),
              day: "2024-01-08" as Day.Day,
              results: []
            })
          ])
          const listed = yield* store.listResults()
          assert.deepStrictEqual(
            listed.map((r) => [r.day, r.policyDomain, r.recipientDomain]),
            [
              ["2024-01-08", "xn--74h.example", "xn--74h.example"],
              [seedDay, "mailhost.noreport.example", "noreport.example"],
              [seedDay, "mailhost.norua.example", "norua.example"],
              [seedDay, "mailhost.notlsrpt.example", "notlsrpt.example"],
              [seedDay, "mailhost.xn--74h.example", "sharedsender.example"],
              [seedDay, "mailhost.xn--74h.example", "xn--74h.example"],
              [seedDay, "xn--74h.example", "xn--74h.example"]
            ]
          )
          assert.deepStrictEqual(ids(yield* store.listResults({ domain: "xn--74h.example" })), [7, 2, 1])
          assert.deepStrictEqual(ids(yield* store.listResults({ domain: "xn--74h.example", day: seedDay })), [2, 1])
          assert.deepStrictEqual(ids(yield* store.listResults({ domain: "sharedsender.example" })), [3])
          assert.deepStrictEqual(ids(yield* store.listResults({ domain: "☺.EXAMPLE" })), [7, 2, 1])
          assert.deepStrictEqual(ids(yield* store.listResults({ day: "2024-01-08" as Day.Day })), [7])
          assert.deepStrictEqual(yield* store.listResults({ domain: "nowhere.example" }), [])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect(
        "deleteKeys removes every recipient domain of each (policy domain, day); deleteBefore is stale cleanup",
        () =>
          Effect.gen(function* () {
            const store = yield* ResultStore
            yield* store.addResults(seedRows)
            yield* store.addResults([
              row({ policyDomain: D("mailhost.xn--74h.example"), day: Day.addDays(seedDay, 1), results: [] })
            ])
            assert.strictEqual(yield* store.deleteKeys([]), 0)
            assert.strictEqual(
              yield* store.deleteKeys([
                { policyDomain: "mailhost.xn--74h.example", day: seedDay },
                { policyDomain: "mailhost.norua.example", day: seedDay },
                { policyDomain: "absent.example", day: seedDay }
              ]),
              3
            )
            assert.deepStrictEqual(ids(yield* store.listResults()), [4, 6, 1, 7])
            assert.strictEqual(yield* store.deleteBefore(seedDay), 0)
            assert.strictEqual(yield* store.deleteBefore(Day.addDays(seedDay, 1)), 3)
            assert.deepStrictEqual(ids(yield* store.listResults()), [7])
          }).pipe(Effect.provide(db.layer))
      )

      it.effect(
        "deleteKeys with a phase removes only the rows that phase owns (docs/design.md#cleanup-per-phase)",
        () =>
          Effect.gen(function* () {
            const store = yield* ResultStore
            const x = D("x.example")
            yield* store.addResults([
              row({ policyDomain: x, recipientDomain: x, day: seedDay, results: [] }),
              row({ policyDomain: x, recipientDomain: D("y.example"), day: seedDay, results: [] }),
              row({ policyDomain: x, recipientDomain: D("z.example"), day: seedDay, results: [] })
            ])
            const left = Effect.map(store.listResults(), (rows) => rows.map((r) => r.recipientDomain))
            assert.strictEqual(
              yield* store.deleteKeys([{ policyDomain: "x.example", day: seedDay, phase: "policy-domain" }]),
              2
            )
            assert.deepStrictEqual(yield* left, ["x.example"])
            yield* store.addResults([
              row({ policyDomain: x, recipientDomain: D("y.example"), day: seedDay, results: [] })
            ])
            assert.strictEqual(
              yield* store.deleteKeys([{ policyDomain: "x.example", day: seedDay, phase: "recipient-domain" }]),
              1
            )
            assert.deepStrictEqual(yield* left, ["y.example"])
          }).pipe(Effect.provide(db.layer))
      )

      it.effect(
        "deleteKeys over many keys of mixed phases (more than one statement's worth) deletes exactly theirs",
        () =>
          Effect.gen(function* () {
            const store = yield* ResultStore
            // 700 policy domains, each with its own row (phase 1) and an MX host's row (phase 2)
            const n = 700
            yield* store.addResults(
              Array.from({ length: n }, (_, i) => {
                const p = D(`p${i}.example`)
                return [
                  row({ policyDomain: p, recipientDomain: p, day: seedDay, results: [] }),
                  row({ policyDomain: p, recipientDomain: D(`r${i}.example`), day: seedDay, results: [] })
                ]
              }).flat()
            )
            const keys = Array.from({ length: n }, (_, i) => ({
              policyDomain: `p${i}.example`,
              day: seedDay,
              phase: i % 3 === 0 ? ("recipient-domain" as const) : i % 3 === 1 ? ("policy-domain" as const) : undefined
            }))
            // every fifth key is left alone; the others delete one row (a phase) or both (no phase); a key
            // listed twice counts once
            const chosen = keys.filter((_, i) => i % 5 !== 4)
            const expected = chosen.reduce((sum, k) => sum + (k.phase === undefined ? 2 : 1), 0)
            assert.strictEqual(yield* store.deleteKeys([...chosen, ...chosen.slice(0, 10)]), expected)
            const left = (yield* store.listResults()).map((r) => `${r.policyDomain} ${r.recipientDomain}`).sort()
            const want = keys
              .flatMap((k, i) => {
                const own = `p${i}.example p${i}.example`
                const mx = `p${i}.example r${i}.example`
                if (i % 5 === 4) return [own, mx]
                return k.phase === "recipient-domain" ? [mx] : k.phase === "policy-domain" ? [own] : []
              })
              .sort()
            assert.deepStrictEqual(left, want)
          }).pipe(Effect.provide(db.layer))
      )

      it.effect("reported days: none at first, then the latest one recorded", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          assert.strictEqual(yield* store.lastReportedDay, undefined)
          yield* store.markDayReported("2024-01-09" as Day.Day)
          yield* store.markDayReported("2024-01-08" as Day.Day)
          yield* store.markDayReported("2024-01-09" as Day.Day)
          assert.strictEqual(yield* store.lastReportedDay, "2024-01-09")
        }).pipe(Effect.provide(db.layer))
      )
    })

    describe("ResultStore.markSentAndEnqueueAll (docs/design.md#one-transaction-for-mark-and-outbox)", () => {
      it.effect(
        "phase 1 marks the recipient domain's rows of that day and stores the addresses; phase 2 the policy domain's",
        () =>
          Effect.gen(function* () {
            const store = yield* ResultStore
            yield* store.addResults(seedRows)
            yield* store.addResults([
              row({
                policyDomain: D("xn--74h.example"),
                recipientDomain: D("xn--74h.example"),
                day: Day.addDays(seedDay, -1),
                results: []
              })
            ])
            yield* TestClock.setTime(7 * MINUTE)
            const addresses = ["mailto:tls-reports@xn--74h.example"]
            yield* store.markSentAndEnqueueAll([
              {
                mark: {
                  phase: "recipient-domain",
                  recipientDomain: "xn--74h.example",
                  day: seedDay,
                  reportingAddresses: addresses
                },
                messages: [message("tls-reports@xn--74h.example")]
              }
            ])
            const marked = (yield* store.listResults()).filter((r) => r.sentToRecipientDomain)
            assert.deepStrictEqual(
              marked.map((r) => [r.id, r.recipientDomainReportingAddresses]),
              [
                [2, addresses],
                [1, addresses]
              ]
            )
            const [queued] = yield* (yield* Outbox).list()
            assert.deepStrictEqual(
              [queued!.id, queued!.status, queued!.attempts, queued!.nextAttemptAt, queued!.created, queued!.lastError],
              [1, "queued", 0, new Date(7 * MINUTE), new Date(7 * MINUTE), undefined]
            )
            assert.deepStrictEqual(queued!.payload, message("tls-reports@xn--74h.example").payload)

            yield* store.markSentAndEnqueueAll([
              {
                mark: { phase: "policy-domain", policyDomain: "mailhost.xn--74h.example", day: seedDay },
                messages: [
                  message("tls-reports1@mailhost.xn--74h.example", { reportId: "r2" }),
                  message("tls-reports2@mailhost.xn--74h.example", { reportId: "r2" })
                ]
              }
            ])
            const rows = yield* store.listResults()
            assert.deepStrictEqual(
              rows.filter((r) => r.sentToPolicyDomain).map((r) => r.id),
              [3, 2]
            )
            assert.deepStrictEqual(
              rows.filter((r) => r.sentToRecipientDomain).map((r) => r.id),
              [2, 1]
            )
            assert.strictEqual((yield* (yield* Outbox).list({ status: "queued" })).length, 3)
          }).pipe(Effect.provide(db.layer))
      )

      it.effect("enqueueing the same report again adds nothing; the first payloads stay", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(seedRows)
          const mark = { phase: "policy-domain", policyDomain: "mailhost.xn--74h.example", day: seedDay } as const
          const messages = [message("a@mailhost.xn--74h.example"), message("b@mailhost.xn--74h.example")]
          yield* store.markSentAndEnqueueAll([{ mark, messages }])
          yield* store.markSentAndEnqueueAll([
            {
              mark,
              messages: [message("b@mailhost.xn--74h.example", { payload: new Uint8Array([1]) }), ...messages]
            },
            { mark, messages }
          ])
          const first = [1, 2]
          assert.deepStrictEqual(yield* (yield* Outbox).enqueue([messages[1]!, messages[0]!]), [first[1], first[0]])
          const outbox = yield* (yield* Outbox).list()
          assert.deepStrictEqual(
            outbox.map((m) => [m.id, m.destination, m.payload]),
            [
              [first[0], "a@mailhost.xn--74h.example", messages[0]!.payload],
              [first[1], "b@mailhost.xn--74h.example", messages[1]!.payload]
            ]
          )
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("a batch of more messages than one INSERT takes stores every one, ids in report order", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(seedRows)
          const mark = { phase: "policy-domain", policyDomain: "mailhost.xn--74h.example", day: seedDay } as const
          // 300 reports of 2 messages: more rows than one multi-row INSERT (OutboxRecords.INSERT_ROWS)
          const reports = Array.from({ length: 300 }, (_, r) => ({
            mark,
            messages: [0, 1].map((k) => message(`m${k}@d${r}.example`, { reportId: `r${r}` }))
          }))
          yield* store.markSentAndEnqueueAll(reports)
          const outbox = yield* (yield* Outbox).list()
          assert.deepStrictEqual(
            outbox.map((m) => [m.id, m.reportId, m.destination]),
            reports.flatMap((r, i) => r.messages.map((m, k) => [2 * i + k + 1, m.reportId, m.destination]))
          )
        }).pipe(Effect.provide(db.layer))
      )

      it.effect(
        "a batch of more keys than one statement takes marks each key with its own addresses, and no other day",
        () =>
          Effect.gen(function* () {
            const store = yield* ResultStore
            const other = Day.addDays(day, -1)
            // 300 keys of each phase (more than ROWS_KEYS per UPDATE), each also on another day
            const keys = Array.from({ length: 300 }, (_, i) => i)
            yield* store.addResults(
              keys.flatMap((i) =>
                [day, other].flatMap((d) => [
                  row({ policyDomain: D(`p${i}.example`), recipientDomain: D(`p${i}.example`), day: d, results: [] }),
                  row({
                    policyDomain: D(`p${i}.example`),
                    recipientDomain: D(`mx${i}.host.example`),
                    isHost: true,
                    day: d,
                    results: []
                  })
                ])
              )
            )
            const addresses = (i: number) => [`mailto:r${i}@p${i}.example`, `https://r${i}.example/tlsrpt`]
            yield* store.markSentAndEnqueueAll([
              // marked twice in one batch: the last mark's addresses stay, as with one UPDATE after the other
              {
                mark: { phase: "recipient-domain", recipientDomain: "p0.example", day, reportingAddresses: ["x"] },
                messages: []
              },
              ...keys.map((i) => ({
                mark: {
                  phase: "recipient-domain" as const,
                  recipientDomain: `p${i}.example`,
                  day,
                  reportingAddresses: addresses(i)
                },
                messages: [message(`r${i}@p${i}.example`, { reportId: `r${i}` })]
              }))
            ])
            yield* store.markSentAndEnqueueAll(
              keys
                .filter((i) => i % 2 === 0)
                .map((i) => ({
                  mark: { phase: "policy-domain" as const, policyDomain: `p${i}.example`, day },
                  messages: []
                }))
            )
            const rows = yield* store.listResults()
            assert.strictEqual(rows.length, 1200)
            for (const r of rows) {
              const i = Number(/^p(\d+)\./.exec(r.policyDomain)![1])
              const direct = r.recipientDomain === r.policyDomain
              const today = r.day === day
              assert.deepStrictEqual(
                [r.sentToRecipientDomain, r.recipientDomainReportingAddresses, r.sentToPolicyDomain],
                [today && direct, today && direct ? addresses(i) : [], today && i % 2 === 0],
                `${r.policyDomain} ${r.recipientDomain} ${r.day}`
              )
            }
            assert.strictEqual((yield* (yield* Outbox).list()).length, 300)
          }).pipe(Effect.provide(db.layer))
      )

      it.effect("a failing outbox insert rolls back the mark and the messages before it", () =>
        Effect.gen(function* () {
          const store = yield* ResultStore
          yield* store.addResults(seedRows)
          const allow = yield* db.refuseOutbox("b@xn--74h.example", "refused by test")
          const mark = {
            phase: "recipient-domain",
            recipientDomain: "xn--74h.example",
            day: seedDay,
            reportingAddresses: ["mailto:a@xn--74h.example", "mailto:b@xn--74h.example"]
          } as const
          const messages = [message("a@xn--74h.example"), message("b@xn--74h.example")]
          const error = yield* Effect.flip(store.markSentAndEnqueueAll([{ mark, messages }]))
          assert.strictEqual(error._tag, "StoreError")
          assert.strictEqual(error.operation, "ResultStore.markSentAndEnqueueAll")
          assert.include(error.message, "refused by test")
          const rows = yield* store.listResults()
          assert.isTrue(rows.every((r) => !r.sentToRecipientDomain && r.recipientDomainReportingAddresses.length === 0))
          assert.deepStrictEqual(yield* (yield* Outbox).list(), [])

          yield* allow
          yield* store.markSentAndEnqueueAll([{ mark, messages }])
          assert.strictEqual((yield* (yield* Outbox).list()).length, 2)
          assert.strictEqual((yield* store.listResults()).filter((r) => r.sentToRecipientDomain).length, 2)
        }).pipe(Effect.provide(db.layer))
      )
    })

    describe("SuppressionList (docs/design.md#suppression-list, docs/design.md#normalised-suppression-addresses)", () => {
      it.effect("stores the normal form; IDN and upper-case spellings match it", () =>
        Effect.gen(function* () {
          const store = yield* SuppressionList
          yield* TestClock.setTime(1_000)
          const s = yield* store.add({ address: "TLS-Reports@☺.Example", until: new Date(10 * MINUTE) })
          assert.deepStrictEqual(s, {
            id: 1,
            address: "tls-reports@xn--74h.example",
            until: new Date(10 * MINUTE),
            comment: "",
            inserted: new Date(1_000)
          })
          const at = new Date(MINUTE)
          for (const spelling of [
            "tls-reports@xn--74h.example",
            "TLS-REPORTS@XN--74H.EXAMPLE",
            "tls-reports@☺.example."
          ]) {
            assert.isTrue(yield* store.isSuppressed(spelling, at), spelling)
          }
          assert.isFalse(yield* store.isSuppressed("tls-reports1@xn--74h.example", at))
          assert.isFalse(yield* store.isSuppressed("not an address", at))
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("https reporting URIs are suppressed too, in WHATWG form, with the same expiry rule", () =>
        Effect.gen(function* () {
          const store = yield* SuppressionList
          const until = new Date(Date.UTC(2024, 0, 10))
          const s = yield* store.add({ address: "HTTPS://Reports.Example:443/tlsrpt", until })
          assert.strictEqual(s.address, "https://reports.example/tlsrpt")
          const before = new Date(until.getTime() - 1)
          for (const spelling of ["https://reports.example/tlsrpt", "https://REPORTS.example/tlsrpt"]) {
            assert.isTrue(yield* store.isSuppressed(spelling, before), spelling)
          }
          assert.isFalse(yield* store.isSuppressed("https://reports.example/other", before))
          assert.isFalse(yield* store.isSuppressed("https://reports.example/tlsrpt", until))
          const again = yield* store.add({
            address: "https://reports.example:443/tlsrpt",
            until: new Date(until.getTime() + 10)
          })
          assert.strictEqual(again.id, s.id)
          assert.isTrue(yield* store.isSuppressed("https://reports.example/tlsrpt", until))
          const refused = yield* Effect.flip(store.add({ address: "http://reports.example/", until }))
          assert.strictEqual(refused._tag, "InvalidAddress")
          assert.isTrue(yield* store.remove("https://Reports.example/tlsrpt"))
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("is active while until > at", () =>
        Effect.gen(function* () {
          const store = yield* SuppressionList
          const until = new Date(Date.UTC(2024, 0, 10))
          yield* store.add({ address: "r@a.example", until })
          assert.isTrue(yield* store.isSuppressed("r@a.example", new Date(until.getTime() - 1)))
          assert.isFalse(yield* store.isSuppressed("r@a.example", until))
          assert.isFalse(yield* store.isSuppressed("r@a.example", new Date(until.getTime() + 1)))
        }).pipe(Effect.provide(db.layer))
      )

      it.effect(
        "adding again replaces until and comment, in any spelling; list is newest first; remove matches by address",
        () =>
          Effect.gen(function* () {
            const store = yield* SuppressionList
            yield* store.add({ address: "a@a.example", until: new Date(1), comment: "first" })
            yield* store.add({ address: "b@b.example", until: new Date(2) })
            const again = yield* store.add({ address: "A@A.example", until: new Date(3), comment: "second" })
            assert.deepStrictEqual([again.id, again.until, again.comment], [1, new Date(3), "second"])
            assert.deepStrictEqual(
              (yield* store.list).map((s) => [s.address, s.until.getTime(), s.comment]),
              [
                ["b@b.example", 2, ""],
                ["a@a.example", 3, "second"]
              ]
            )
            assert.strictEqual((yield* store.add({ address: "B@b.example", until: new Date(20) })).id, 2)
            assert.isTrue(yield* store.isSuppressed("b@b.example", new Date(19)))
            assert.isTrue(yield* store.remove("a@A.EXAMPLE"))
            assert.isFalse(yield* store.remove("a@a.example"))
            assert.deepStrictEqual(
              (yield* store.list).map((s) => s.address),
              ["b@b.example"]
            )
          }).pipe(Effect.provide(db.layer))
      )

      it.effect("refuses an invalid address with InvalidAddress", () =>
        Effect.gen(function* () {
          const store = yield* SuppressionList
          for (const address of ["no-at-sign", "a@", "a b@c.example", "a@-bad-.example"]) {
            const error = yield* Effect.flip(store.add({ address, until: new Date(1) }))
            assert.strictEqual(error._tag, "InvalidAddress", address)
            assert.strictEqual((yield* Effect.flip(store.remove(address)))._tag, "InvalidAddress")
          }
          assert.deepStrictEqual(yield* store.list, [])
        }).pipe(Effect.provide(db.layer))
      )
    })

    describe("Outbox", () => {
      it.effect("due → failed attempt → due again later → delivered; permanent failure is never due", () =>
        Effect.gen(function* () {
          const store = yield* Outbox
          const t0 = Date.UTC(2024, 0, 10, 0, 5)
          yield* TestClock.setTime(t0)
          const [a, b] = yield* store.enqueue([
            message("a@a.example", { reportId: "r1" }),
            message("https://b.example/tlsrpt", { kind: "https", envelopeFrom: "", reportId: "r1" })
          ])
          // What a delivery pass would claim at `at`; the probe's lease is given back at once.
          let probes = 0
          const dueAt = (at: number, limit: number) =>
            Effect.gen(function* () {
              const owner = `probe-${probes++}`
              const claimed = yield* store.claimDue(new Date(at), limit, { owner, until: new Date(at + MINUTE) })
              for (const m of claimed) yield* store.releaseClaim(m.id, owner)
              return claimed
            })
          const due = (at: number, limit = 10) => Effect.map(dueAt(at, limit), (ms) => ms.map((m) => m.id))

          assert.deepStrictEqual(yield* due(t0 - 1), [])
          assert.deepStrictEqual(yield* due(t0), [a, b])
          assert.deepStrictEqual(yield* due(t0, 1), [a])
          const [https] = yield* dueAt(t0, 10).pipe(Effect.map((ms) => ms.filter((m) => m.id === b)))
          assert.deepStrictEqual(
            [https!.kind, https!.destination, https!.envelopeFrom],
            ["https", "https://b.example/tlsrpt", ""]
          )

          yield* store.markAttemptFailed(a!, {
            error: "421 try later",
            at: new Date(t0 + 1),
            nextAttemptAt: new Date(t0 + 7.5 * MINUTE)
          })
          assert.deepStrictEqual(yield* due(t0 + 7.5 * MINUTE - 1), [b])
          // Oldest due first: b has been due since t0.
          assert.deepStrictEqual(yield* due(t0 + 7.5 * MINUTE), [b, a])

          yield* store.markDelivered(b!, new Date(t0 + 2))
          assert.deepStrictEqual(yield* due(t0 + 7.5 * MINUTE), [a])

          yield* store.markAttemptFailed(a!, {
            error: "550 no such user",
            at: new Date(t0 + 8 * MINUTE),
            nextAttemptAt: undefined
          })
          assert.deepStrictEqual(yield* due(t0 + 365 * 24 * 60 * MINUTE), [])

          const [failed] = yield* store.list({ status: "failed" })
          assert.deepStrictEqual(
            [failed!.id, failed!.attempts, failed!.lastError, failed!.nextAttemptAt, failed!.updated, failed!.created],
            [a, 2, "550 no such user", new Date(t0 + 7.5 * MINUTE), new Date(t0 + 8 * MINUTE), new Date(t0)]
          )
          const [delivered] = yield* store.list({ status: "delivered" })
          assert.deepStrictEqual([delivered!.id, delivered!.attempts, delivered!.updated], [b, 1, new Date(t0 + 2)])
          assert.deepStrictEqual(yield* store.list({ status: "queued" }), [])
          assert.deepStrictEqual(
            (yield* store.list()).map((m) => m.id),
            [a, b]
          )
        }).pipe(Effect.provide(db.layer))
      )

      it.scoped(
        "nextDueAt: the earliest queued message's attempt or lease end; writes that queue raise OutboxSignal (docs/design.md#delivery-loop)",
        () =>
          Effect.gen(function* () {
            const store = yield* Outbox
            const results = yield* ResultStore
            const listener = yield* Effect.flatMap(OutboxSignal, (s) => s.listen)
            const raised = Effect.map(
              Effect.timeout(listener.next, Duration.millis(0)).pipe(Effect.option),
              Option.isSome
            )
            const t0 = Date.UTC(2024, 0, 10, 0, 5)
            yield* TestClock.setTime(t0)
            assert.isUndefined(yield* store.nextDueAt())
            assert.isFalse(yield* raised)

            const [a, b] = yield* store.enqueue([message("a@a.example"), message("b@b.example")])
            assert.isTrue(yield* raised)
            assert.isFalse(yield* raised)
            assert.deepStrictEqual(yield* store.nextDueAt(), new Date(t0))
            // a leased message is due when its lease ends
            yield* store.claimDue(new Date(t0), 1, { owner: "o", until: new Date(t0 + 10 * MINUTE) })
            yield* store.markAttemptFailed(b!, {
              error: "421",
              at: new Date(t0),
              nextAttemptAt: new Date(t0 + 15 * MINUTE)
            })
            assert.deepStrictEqual(yield* store.nextDueAt(), new Date(t0 + 10 * MINUTE))
            yield* store.markAttemptFailed(a!, {
              error: "421",
              at: new Date(t0),
              nextAttemptAt: new Date(t0 + 7 * MINUTE)
            })
            assert.deepStrictEqual(yield* store.nextDueAt(), new Date(t0 + 7 * MINUTE))
            // delivered and failed messages are never due
            yield* store.markDelivered(a!, new Date(t0 + 7 * MINUTE))
            yield* store.markAttemptFailed(b!, { error: "550", at: new Date(t0), nextAttemptAt: undefined })
            assert.isUndefined(yield* store.nextDueAt())
            assert.isFalse(yield* raised)

            yield* store.requeue("failed", new Date(t0 + 20 * MINUTE))
            assert.isTrue(yield* raised)
            assert.deepStrictEqual(yield* store.nextDueAt(), new Date(t0 + 20 * MINUTE))

            // a round's commit raises it too; a batch without messages does not
            yield* results.markSentAndEnqueueAll([])
            assert.isFalse(yield* raised)
            yield* results.markSentAndEnqueueAll([
              {
                mark: { phase: "policy-domain", policyDomain: "c.example", day: Day.fromMillis(t0) },
                messages: [message("c@c.example", { reportId: "r-c" })]
              }
            ])
            assert.isTrue(yield* raised)
            assert.strictEqual(yield* store.count("queued"), 2)
          }).pipe(Effect.provide(db.layer))
      )

      it.effect("claimDue leases due messages once; an expired lease, a release or a recorded outcome frees them", () =>
        Effect.gen(function* () {
          const store = yield* Outbox
          const t0 = Date.UTC(2024, 0, 10, 0, 5)
          yield* TestClock.setTime(t0)
          const [a, b, c] = yield* store.enqueue([
            message("a@a.example", { reportId: "r1" }),
            message("b@a.example", { reportId: "r1" }),
            message("c@a.example", { reportId: "r1" })
          ])
          const claim = (owner: string, at: number, limit = 10) =>
            Effect.map(store.claimDue(new Date(at), limit, { owner, until: new Date(at + MINUTE) }), (ms) =>
              ms.map((m) => m.id)
            )
          assert.deepStrictEqual(yield* claim("p1", t0 - 1), [])
          assert.deepStrictEqual(yield* claim("p1", t0, 2), [a, b])
          // Leased: another process gets only what is left; all three stay queued.
          assert.deepStrictEqual(yield* claim("p2", t0), [c])
          assert.deepStrictEqual(yield* claim("p3", t0 + 1), [])
          assert.strictEqual((yield* store.list({ status: "queued" })).length, 3)
          // A release by another owner does nothing; by the holder, the message is claimable at once.
          yield* store.releaseClaim(a!, "p2")
          assert.deepStrictEqual(yield* claim("p3", t0 + 1), [])
          yield* store.releaseClaim(a!, "p1")
          assert.deepStrictEqual(yield* claim("p3", t0 + 1), [a])
          // A recorded outcome ends the lease: b is due again later, then claimable.
          yield* store.markAttemptFailed(b!, { error: "421", at: new Date(t0 + 2), nextAttemptAt: new Date(t0 + 3) })
          assert.deepStrictEqual(yield* claim("p3", t0 + 3), [b])
          // An expired lease: c's holder died.
          assert.deepStrictEqual(yield* claim("p4", t0 + MINUTE), [c])
          yield* store.markDelivered(c!, new Date(t0 + MINUTE))
          assert.deepStrictEqual(yield* claim("p5", t0 + 10 * MINUTE), [a, b])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("concurrent claims never hand one message to two owners", () =>
        Effect.gen(function* () {
          const store = yield* Outbox
          const t0 = Date.UTC(2024, 0, 10, 0, 5)
          yield* TestClock.setTime(t0)
          const ids = yield* store.enqueue(
            Array.from({ length: 40 }, (_, i) => message(`m${i}@a.example`, { reportId: "r1" }))
          )
          const claims = yield* Effect.all(
            Array.from({ length: 8 }, (_, i) =>
              Effect.map(store.claimDue(new Date(t0), 7, { owner: `p${i}`, until: new Date(t0 + MINUTE) }), (ms) =>
                ms.map((m) => m.id)
              )
            ),
            { concurrency: "unbounded" }
          )
          const claimed = claims.flat()
          assert.strictEqual(new Set(claimed).size, claimed.length)
          assert.isAtMost(claimed.length, ids.length)
          for (const c of claims) assert.isAtMost(c.length, 7)
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("requeue: failed messages queued again with a fresh count; a queued one due at once", () =>
        Effect.gen(function* () {
          const store = yield* Outbox
          const t0 = Date.UTC(2024, 0, 10, 0, 5)
          yield* TestClock.setTime(t0)
          const [a, b, c] = yield* store.enqueue([
            message("a@a.example", { reportId: "r1" }),
            message("b@a.example", { reportId: "r1" }),
            message("c@a.example", { reportId: "r1" })
          ])
          for (const id of [a!, b!]) {
            yield* store.markAttemptFailed(id, { error: "550", at: new Date(t0), nextAttemptAt: undefined })
          }
          yield* store.markAttemptFailed(c!, { error: "421", at: new Date(t0), nextAttemptAt: new Date(t0 + MINUTE) })
          const [d] = yield* store.enqueue([message("d@a.example", { reportId: "r2" })])
          yield* store.markDelivered(d!, new Date(t0))
          assert.deepStrictEqual(yield* store.requeue({ id: c! }, new Date(t0 + 1)), [c])
          const byId = Effect.map(store.list(), (ms) => new Map(ms.map((m) => [m.id, m])))
          assert.deepStrictEqual(
            [(yield* byId).get(c!)!.attempts, (yield* byId).get(c!)!.nextAttemptAt],
            [1, new Date(t0 + 1)]
          )
          assert.deepStrictEqual(yield* store.requeue("failed", new Date(t0 + 2)), [a, b])
          const after = yield* byId
          assert.deepStrictEqual(
            [a!, b!].map((id) => [after.get(id)!.status, after.get(id)!.attempts]),
            [
              ["queued", 0],
              ["queued", 0]
            ]
          )
          assert.deepStrictEqual(yield* store.requeue("failed", new Date(t0 + 3)), [])
          // A delivered message stays delivered.
          assert.deepStrictEqual(yield* store.requeue({ id: d! }, new Date(t0 + 3)), [])
        }).pipe(Effect.provide(db.layer))
      )

      it.effect("enqueue of nothing returns nothing", () =>
        Effect.gen(function* () {
          const store = yield* Outbox
          assert.deepStrictEqual(yield* store.enqueue([]), [])
          assert.deepStrictEqual(yield* store.list(), [])
        }).pipe(Effect.provide(db.layer))
      )
    })
  })
}

// The round's batched reads and commits (SQLite; the trigger below is SQLite syntax).
describe("ResultStore batched round access (SQLite)", () => {
  const ids = (rows: ReadonlyArray<ResultRow>) => rows.map((r) => r.id)
  it.effect("rowsOfKeys gives each key, in input order, its rows in the order of docs/design.md#ordering", () =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      yield* store.addResults(seedRows)
      const domains = [...new Set(seedRows.flatMap((r) => [r.policyDomain.ascii, r.recipientDomain.ascii]))]
      // every domain on the seed's day and the next, one key twice, one unknown: as the per-key queries
      const keys = [
        ...domains.flatMap((domain) => [
          { domain, day: seedDay },
          { domain, day: Day.addDays(seedDay, 1) }
        ]),
        { domain: domains[0]!, day: seedDay },
        { domain: "unknown.example", day: seedDay }
      ]
      const phase1 = yield* store.rowsOfKeys("recipient-domain", keys)
      const phase2 = yield* store.rowsOfKeys("policy-domain", keys)
      assert.strictEqual(phase1.length, keys.length)
      // The reference: every row, filtered and ordered as docs/design.md#ordering says.
      const all = yield* store.listResults()
      const byId = (a: ResultRow, b: ResultRow) => a.id - b.id
      for (const [i, k] of keys.entries()) {
        const phase1Rows = all.filter((r) => r.recipientDomain === k.domain && r.day === k.day).sort(byId)
        const phase2Rows = all
          .filter((r) => r.policyDomain === k.domain && r.day === k.day)
          .sort((a, b) =>
            a.recipientDomain < b.recipientDomain ? -1 : a.recipientDomain > b.recipientDomain ? 1 : byId(a, b)
          )
        assert.deepStrictEqual(phase1[i], phase1Rows, `1 ${k.domain}`)
        assert.deepStrictEqual(phase2[i], phase2Rows, `2 ${k.domain}`)
      }
      assert.deepStrictEqual(ids(phase2[keys.findIndex((k) => k.domain === "mailhost.xn--74h.example")]!), [3, 2])
      assert.deepStrictEqual(yield* store.rowsOfKeys("policy-domain", []), [])
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.effect("rowsOfKeys over more keys than one query holds", () =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      const n = 600
      yield* store.addResults(
        Array.from({ length: n }, (_, i) =>
          row({ policyDomain: D(`d${i}.example`), recipientDomain: D(`d${i}.example`), results: [tlsa(i, 1)] })
        )
      )
      const keys = Array.from({ length: n }, (_, i) => ({ domain: `d${n - 1 - i}.example`, day }))
      const rows = yield* store.rowsOfKeys("recipient-domain", keys)
      assert.deepStrictEqual(
        rows.map((r) => r.map((x) => x.recipientDomain)),
        keys.map((k) => [k.domain])
      )
    }).pipe(Effect.provide(Store.layerMemory))
  )

  it.effect("markSentAndEnqueueAll: the reports of a batch commit together, or none of them", () =>
    Effect.gen(function* () {
      const store = yield* ResultStore
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      yield* store.addResults(seedRows)
      const reports = [
        {
          mark: {
            phase: "recipient-domain",
            recipientDomain: "xn--74h.example",
            day: seedDay,
            reportingAddresses: ["mailto:a@xn--74h.example"]
          },
          messages: [message("a@xn--74h.example")]
        },
        {
          mark: { phase: "policy-domain", policyDomain: "mailhost.xn--74h.example", day: seedDay },
          messages: [message("b@mailhost.xn--74h.example", { reportId: "r2" })]
        }
      ] as const
      // the second report's insert fails: the first one's mark and message roll back too
      yield* sql`CREATE TRIGGER outbox_refuse BEFORE INSERT ON outbox WHEN NEW.destination = 'b@mailhost.xn--74h.example'
        BEGIN SELECT RAISE(ABORT, 'refused by test'); END`
      const error = yield* Effect.flip(store.markSentAndEnqueueAll(reports))
      assert.strictEqual(error.operation, "ResultStore.markSentAndEnqueueAll")
      assert.isTrue((yield* store.listResults()).every((r) => !r.sentToRecipientDomain && !r.sentToPolicyDomain))
      assert.deepStrictEqual(yield* outbox.list(), [])

      yield* sql`DROP TRIGGER outbox_refuse`
      yield* store.markSentAndEnqueueAll(reports)
      // again: a no-op on the outbox ((report-id, destination) is unique)
      yield* store.markSentAndEnqueueAll(reports)
      const rows = yield* store.listResults()
      assert.deepStrictEqual(
        rows.filter((r) => r.sentToRecipientDomain).map((r) => [r.id, r.recipientDomainReportingAddresses]),
        [
          [2, ["mailto:a@xn--74h.example"]],
          [1, ["mailto:a@xn--74h.example"]]
        ]
      )
      assert.deepStrictEqual(
        rows.filter((r) => r.sentToPolicyDomain).map((r) => r.id),
        [3, 2]
      )
      assert.deepStrictEqual(
        (yield* outbox.list()).map((m) => [m.destination, m.reportId, m.status]),
        [
          ["a@xn--74h.example", message("a@xn--74h.example").reportId, "queued"],
          ["b@mailhost.xn--74h.example", "r2", "queued"]
        ]
      )
    }).pipe(Effect.provide(Store.layerMemory))
  )
})
