import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Day, Domain, EmailAddress, Report } from "@tlsrpt/core"
import { Clock, Duration, Effect, Either, Fiber, Random, TestClock } from "effect"
import { makeComposePool } from "../src/ComposePool.js"
import { makeDkimSigner } from "../src/DkimSigner.js"
import { dkimDnsName, dkimKeyFromPem, generateDkimKeyPair } from "../src/DkimKeys.js"
import { makeReportMail, makeReportMailPooled, type ReportMailService } from "../src/ReportMail.js"
import { type ReportJob, renderReportAndSign } from "../src/ReportMailRender.js"
import { makeSubmitter } from "../src/Submitter.js"
import { verifyDkimpyAll, verifyMailauth } from "./DkimVerifiers.js"

const seed = JSON.parse(readFileSync(new URL("../../testkit/fixtures/seed.json", import.meta.url), "utf8")) as {
  readonly reports: { readonly report1: unknown }
}
const report1 = Either.getOrThrow(Report.fromJson(seed.reports.report1))
const NOW = Date.UTC(2024, 0, 10, 0, 5, 7)
const submitter = Either.getOrThrow(makeSubmitter({ domain: "mox.example" }))
const keyPair = Effect.runPromise(generateDkimKeyPair("rsa-sha256"))
const fixture = Effect.promise(() => keyPair).pipe(
  Effect.map((pair) => {
    const key = Either.getOrThrow(
      dkimKeyFromPem({
        domain: "mox.example",
        selector: "pool",
        algorithm: "rsa-sha256",
        privateKeyPem: pair.privateKeyPem,
        file: "pool"
      })
    )
    return { key, records: new Map([[dkimDnsName(key), pair.dnsRecord]]) }
  })
)

/** 12 reports to different policy domains, with the same Random seed each time. */
const composeAll = (service: ReportMailService) =>
  Effect.forEach(
    Array.from({ length: 12 }, (_, i) => i),
    (i) =>
      service.compose({
        report: report1,
        policyDomain: Domain.unsafeMake(i % 3 === 0 ? `☺${i}.example` : `d${i}.example`),
        day: Either.getOrThrow(Day.parse("2024-01-09")),
        to: [Either.getOrThrow(EmailAddress.parse(`tlsrpt@d${i}.example`))]
      }),
    { concurrency: "unbounded" }
  ).pipe(Effect.withRandom(Random.make(7)))

/** A pool's keys and signing options: the test key, From and Subject signed. */
const poolInit = (privateKeyPem: string) => ({
  keys: [{ domain: "mox.example", selector: "pool", algorithm: "rsa-sha256" as const, privateKeyPem }],
  options: { headers: ["From", "Subject"], oversign: [] }
})

/** Job `i` of a batch: its own recipient, subject, Message-ID, text length and report id. */
const numberedJob = (i: number): ReportJob => ({
  hostname: "mox.example",
  from: "postmaster@mox.example",
  to: [`a${i}@b.example`],
  subject: `report ${i}`,
  reportHeaders: [],
  messageId: `<${i}@mox.example>`,
  date: NOW,
  boundary: `tlsrpt-${i}`,
  text: `t${"x".repeat(i * 7)}\r\n`,
  filename: "f.json.gz",
  mediaType: "application/tlsrpt+gzip",
  report: { ...report1, reportId: `r${i}` }
})

describe("ComposePool", () => {
  it.scoped("worker threads write the same signed bytes as the in-thread composer, and they verify", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const { key, records } = yield* fixture
      const inThread = yield* composeAll(yield* makeReportMail({ submitter, dkim: [key] }))
      const pooled = yield* composeAll(yield* makeReportMailPooled({ submitter, dkim: [key] }, 2))
      assert.deepStrictEqual(
        pooled.map((m) => Buffer.from(m.raw).toString("latin1")),
        inThread.map((m) => Buffer.from(m.raw).toString("latin1"))
      )
      for (const m of pooled) assert.deepStrictEqual(yield* verifyMailauth(m.raw, records, NOW), ["pass"])
      assert.deepStrictEqual(
        yield* verifyDkimpyAll(
          pooled.map((m) => m.raw),
          records
        ),
        pooled.map(() => ["pass"])
      )
    })
  )

  it.scoped("threads start with a job and are retired after the idle period; a later round starts them again", () =>
    Effect.gen(function* () {
      const { key, records } = yield* fixture
      const pool = yield* makeComposePool(
        2,
        {
          keys: [
            { domain: "mox.example", selector: "pool", algorithm: "rsa-sha256", privateKeyPem: key.privateKeyPem }
          ],
          options: { headers: ["From", "Subject"], oversign: [] }
        },
        { idle: Duration.millis(200) }
      )
      const round = (from: number) =>
        Effect.forEach([from, from + 1, from + 2, from + 3], (i) => pool.run(numberedJob(i)), {
          concurrency: "unbounded"
        })
      // Real time: the idle timer frees real threads, whatever clock the caller runs on.
      const threadsAfterIdle = Effect.sleep(Duration.millis(50)).pipe(
        Effect.withClock(Clock.make()),
        Effect.zipRight(Effect.sync(pool.threads)),
        Effect.repeat({ until: (n) => n === 0, times: 400 })
      )

      assert.strictEqual(pool.threads(), 0)
      const first = yield* round(0)
      assert.strictEqual(pool.threads(), 2)
      assert.strictEqual(yield* threadsAfterIdle, 0)
      const second = yield* round(4)
      assert.strictEqual(pool.threads(), 2)
      for (const raw of [...first, ...second])
        assert.deepStrictEqual(yield* verifyMailauth(raw, records, NOW), ["pass"])
      assert.strictEqual(yield* threadsAfterIdle, 0)
    })
  )

  it.scoped("a job that throws in a thread fails with its reason, and the pool goes on", () =>
    Effect.gen(function* () {
      const { key } = yield* fixture
      const pool = yield* makeComposePool(1, {
        keys: [{ domain: "mox.example", selector: "pool", algorithm: "rsa-sha256", privateKeyPem: key.privateKeyPem }],
        options: { headers: ["From"], oversign: [] }
      })
      const good = {
        hostname: "mox.example",
        from: "postmaster@mox.example",
        to: ["a@b.example"],
        subject: "s",
        reportHeaders: [],
        messageId: "<x@mox.example>",
        date: NOW,
        boundary: "tlsrpt-0",
        text: "t\r\n",
        filename: "f.json.gz",
        mediaType: "application/tlsrpt+gzip",
        report: report1
      }
      const bad = yield* Effect.flip(pool.run({ ...good, report: undefined as unknown as Report.Report }))
      assert.strictEqual(bad._tag, "ComposeWorkerError")
      // ReportJson names the value it refuses (issue 15)
      assert.match(bad.reason, /invalid report at report: expected an object/)
      const ok = yield* pool.run(good)
      assert.match(Buffer.from(ok).toString("latin1"), /^DKIM-Signature: v=1; a=rsa-sha256;/)
    })
  )

  it.scoped("jobs given in one turn go as one batch: each gets its own mail, a bad one fails alone", () =>
    Effect.gen(function* () {
      const { key } = yield* fixture
      const init = poolInit(key.privateKeyPem)
      const signer = makeDkimSigner(init.keys, init.options)
      const pool = yield* makeComposePool(1, init)
      const job = (i: number) =>
        i === 5 ? { ...numberedJob(i), report: undefined as unknown as Report.Report } : numberedJob(i)
      const results = yield* Effect.forEach(
        Array.from({ length: 9 }, (_, i) => i),
        (i) => Effect.either(pool.run(job(i))),
        { concurrency: "unbounded" }
      )
      for (const [i, r] of results.entries()) {
        if (i === 5) {
          assert.isTrue(Either.isLeft(r))
          continue
        }
        assert.strictEqual(
          Buffer.from(Either.getOrThrow(r)).toString("latin1"),
          renderReportAndSign(job(i), signer).toString("latin1")
        )
      }
    })
  )

  it.scoped(
    "runAll posts a batch at once, while the caller's turn goes on; a single job waits for the turn's end",
    () =>
      Effect.gen(function* () {
        const { key } = yield* fixture
        const init = poolInit(key.privateKeyPem)
        const signer = makeDkimSigner(init.keys, init.options)
        const pool = yield* makeComposePool(2, init)
        // Set when this turn of the event loop ends: Effect runs its ready fibers within the turn, so a
        // batch left for the turn's end waited for the caller's other fibers (the round's convoy).
        let turnEnded = false
        setImmediate(() => {
          turnEnded = true
        })
        const single = yield* Effect.fork(pool.run(numberedJob(0)))
        yield* Effect.yieldNow()
        assert.isFalse(turnEnded)
        assert.strictEqual(pool.threads(), 0, "a single job goes at the end of the turn, with the others of that turn")
        const jobs = [numberedJob(1), numberedJob(2)]
        const batch = yield* Effect.fork(pool.runAll(jobs))
        yield* Effect.yieldNow()
        assert.isFalse(turnEnded)
        // the batch's message went at once: each thread it was spread over has started
        assert.strictEqual(pool.threads(), 2)
        const results = yield* Fiber.join(batch)
        for (const [i, r] of results.entries()) {
          assert.strictEqual(
            Buffer.from(r as Uint8Array).toString("latin1"),
            renderReportAndSign(jobs[i]!, signer).toString("latin1")
          )
        }
        const one = yield* Fiber.join(single)
        assert.strictEqual(
          Buffer.from(one).toString("latin1"),
          renderReportAndSign(numberedJob(0), signer).toString("latin1")
        )
      })
  )

  it.scoped("runAll: a batch spread over the threads, each job's mail in job order, a bad one fails alone", () =>
    Effect.gen(function* () {
      const { key } = yield* fixture
      const init = poolInit(key.privateKeyPem)
      const signer = makeDkimSigner(init.keys, init.options)
      const pool = yield* makeComposePool(2, init)
      const jobs = Array.from({ length: 9 }, (_, i) =>
        i === 4 ? { ...numberedJob(i), report: undefined as unknown as Report.Report } : numberedJob(i)
      )
      const results = yield* pool.runAll(jobs)
      assert.strictEqual(pool.threads(), 2)
      for (const [i, r] of results.entries()) {
        if (i === 4) {
          assert.instanceOf(r, Error)
          continue
        }
        assert.instanceOf(r, Uint8Array)
        assert.strictEqual(
          Buffer.from(r as Uint8Array).toString("latin1"),
          renderReportAndSign(jobs[i]!, signer).toString("latin1")
        )
      }
      assert.deepStrictEqual(yield* pool.runAll([]), [])
    })
  )
})

describe("ReportMail.composeAll", () => {
  const inputs = Array.from({ length: 7 }, (_, i) => ({
    report: report1,
    policyDomain: Domain.unsafeMake(`d${i}.example`),
    day: Either.getOrThrow(Day.parse("2024-01-09")),
    to: i === 3 ? [] : [Either.getOrThrow(EmailAddress.parse(`tlsrpt@d${i}.example`))]
  }))
  const oneByOne = (service: ReportMailService) =>
    Effect.forEach(inputs, (input) => Effect.either(service.compose(input))).pipe(Effect.withRandom(Random.make(7)))
  const batch = (service: ReportMailService) => service.composeAll(inputs).pipe(Effect.withRandom(Random.make(7)))
  const text = (results: ReadonlyArray<Either.Either<{ readonly raw: Uint8Array }, { readonly reason: string }>>) =>
    results.map((r) =>
      Either.match(r, { onLeft: (e) => `error: ${e.reason}`, onRight: (m) => Buffer.from(m.raw).toString("latin1") })
    )

  it.scoped(
    "gives compose's bytes one by one, in input order, in-thread and pooled; an input without recipients fails alone",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(NOW)
        const { key } = yield* fixture
        const inThread = yield* makeReportMail({ submitter, dkim: [key] })
        const pooled = yield* makeReportMailPooled({ submitter, dkim: [key] }, 2)
        const expected = text(yield* oneByOne(inThread))
        assert.strictEqual(expected[3], "error: no recipients")
        assert.notStrictEqual(expected[0], expected[1])
        assert.deepStrictEqual(text(yield* batch(inThread)), expected)
        assert.deepStrictEqual(text(yield* batch(pooled)), expected)
        assert.deepStrictEqual(text(yield* oneByOne(pooled)), expected)
      })
  )
})
