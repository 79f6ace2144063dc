/**
 * Benchmark `round` (issue 6): one report round over N policy domains × 5 policies each, RSA-2048
 * DKIM, the in-memory DNS layer, a SQLite file store and the `dir` transport into a temporary folder,
 * no pacing; then the same messages signed in a bare RSA-2048 loop, the cost floor.
 * Delivery runs as in the worker: the background loop of `Delivery.layer` with the worker's options,
 * woken by OutboxSignal as the round's batches commit, so it delivers while the round still
 * composes; the time is from the round's start until every message is delivered (before issue 15
 * the bench ran the round and then delivery passes one after the other, and added the two).
 * Prints figures per size and ends with one JSON line for N = 10,000.
 * `pnpm bench` compiles it and runs dist/ with the V8 flags of the bin and the systemd unit (the
 * compiled workspace packages, as the worker runs in production; tsx's loader, in every compose
 * thread too, would add some 150 MB of RSS);
 * `pnpm bench:source` runs the sources through tsx.
 * `ROUND_DIR=folder`: where the SQLite file and the outbox folder go (default the system's temporary
 * folder). On this project's VM, creating a file on its ext4 disk costs about 50 µs of kernel time,
 * but up to 1 ms for about five minutes after many files near it were deleted: the disk is mounted
 * without a journal, and then ext4 skips recently deleted inodes one by one when it allocates one.
 * The tests, the benches and this bench's own clean-up delete thousands of files in the temporary
 * folder, so there the `dir` transport's two files per report can outweigh the round's own work.
 * `ROUND_DIR=/dev/shm` (tmpfs) measures the round without that; a folder elsewhere on the disk, five
 * minutes after any deletion near it, measures the disk in its usual state (docs/design.md#outbox-folder-writer).
 */
import { execFile } from "node:child_process"
import { createPrivateKey, sign } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Day, Domain, EmailAddress, PolicyResult } from "@tlsrpt/core"
import { Dns, TlsrptLookup } from "@tlsrpt/dns"
import {
  Delivery,
  defaultPoolSize,
  dkimKeyFromPem,
  generateDkimKeyPair,
  makeSubmitter,
  ReportMail,
  Transport
} from "@tlsrpt/mail"
import { Outbox, ResultStore, Store } from "@tlsrpt/store"
import { allThreads, mainThreadMs } from "@tlsrpt/testkit/ThreadCpu"
import { Effect, Either, Layer, Logger, LogLevel } from "effect"
import { defaultConfig, Reporter, RoundPlan } from "../src/index.js"
import * as ReporterLive from "../src/ReporterLive.js"

const DAY = "2024-01-09" as Day.Day
const sizes = (process.env.ROUND_SIZES ?? "2500,5000,10000").split(",").map(Number)

let peakRss = 0
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 20)

const rowsFor = (n: number) =>
  Array.from({ length: n }, (_, i) => {
    const d = Domain.unsafeMake(`d${i}.example`)
    return {
      policyDomain: d,
      day: DAY,
      recipientDomain: d,
      isHost: false,
      sendReport: true,
      results: Array.from({ length: 5 }, (_, p) =>
        PolicyResult.make(p === 0 ? "sts" : "tlsa", p === 0 ? d.ascii : `mx${p}.${d.ascii}`, {
          policyString:
            p === 0 ? ["version: STSv1", "mode: enforce", `mx: mx${p}.${d.ascii}`] : [`3 1 1 ${"ab".repeat(32)}`],
          mxHost: p === 0 ? [`*.${d.ascii}`] : [],
          success: 1000 + p,
          failure: p === 1 ? 3 : 0,
          failureDetails:
            p === 1
              ? [
                  {
                    resultType: "certificate-expired",
                    sendingMtaIp: "192.0.2.1",
                    receivingIp: "198.51.100.7",
                    receivingMxHostname: `mx1.${d.ascii}`,
                    failedSessionCount: 3
                  }
                ]
              : []
        })
      )
    }
  })

/** CPU seconds of the main thread alone: the work that cannot move to the compose pool. */
const mainThreadCpu = (): number => mainThreadMs() / 1000

/**
 * Every thread's user and system CPU seconds by tid. The threads there before the round but main are
 * V8's platform threads (GC helpers, the compiler) and libuv's pool (started by the module loader);
 * their user time is mostly GC, their system time mostly libuv's file operations (the `dir`
 * transport's). Threads that appear during the round are the compose pool's.
 */
const threadsCpu = (): Map<string, readonly [number, number]> =>
  new Map([...allThreads()].map(([tid, t]) => [tid, [(t.ms - t.systemMs) / 1000, t.systemMs / 1000] as const]))

/**
 * `ROUND_PROFILE=path`: a CPU profile of the main thread from the round's start until all is delivered
 * (round and delivery loop), written to `path.N.cpuprofile`; with `ROUND_HEAP_PROFILE=1`, a sampled
 * allocation profile of the same span instead (`path.N.heapprofile`: where the main thread allocates).
 */
const heapProfile = process.env.ROUND_HEAP_PROFILE === "1"
const startProfile = Effect.promise(async () => {
  const session = new Session()
  session.connect()
  if (heapProfile) {
    await session.post("HeapProfiler.enable")
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 16384,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    })
  } else {
    await session.post("Profiler.enable")
    await session.post("Profiler.start")
  }
  return session
})
const stopProfile = (session: Session, file: string) =>
  Effect.promise(async () => {
    if (heapProfile) {
      const { profile } = await session.post("HeapProfiler.stopSampling")
      writeFileSync(`${file}.heapprofile`, JSON.stringify(profile))
    } else {
      const { profile } = await session.post("Profiler.stop")
      writeFileSync(`${file}.cpuprofile`, JSON.stringify(profile))
    }
    session.disconnect()
  })

const run = (n: number, privateKeyPem: string) =>
  Effect.gen(function* () {
    const dir = mkdtempSync(join(process.env.ROUND_DIR ?? tmpdir(), "tlsrpt-bench-round-"))
    const outbox = join(dir, "outbox")
    const answers = Object.fromEntries(
      Array.from({ length: n }, (_, i) => [
        `_smtp._tls.d${i}.example.`,
        [`v=TLSRPTv1; rua=mailto:tlsrpt@d${i}.example`]
      ])
    )
    const submitter = Either.getOrThrow(makeSubmitter({ domain: "reports.example" }))
    const key = Either.getOrThrow(
      dkimKeyFromPem({
        domain: "reports.example",
        selector: "bench",
        algorithm: "rsa-sha256",
        privateKeyPem,
        file: "(generated)"
      })
    )
    const deps = Layer.mergeAll(
      Store.layer({ filename: join(dir, "tlsrpt.db") }),
      TlsrptLookup.layer.pipe(Layer.provide(Dns.layerTest(answers))),
      // as the worker app composes: on a thread per core (ComposePool)
      ReportMail.layer({ submitter, dkim: [key], workers: defaultPoolSize() }),
      Transport.layerDir({ dir: outbox })
    )
    // the worker's delivery (apps/worker Layers.ts: `Delivery.layer` with the default batch and
    // concurrency), its loop started before the round
    const env = Layer.mergeAll(ReporterLive.layer({ ...defaultConfig, https: false }), Delivery.layer()).pipe(
      Layer.provideMerge(deps)
    )
    return yield* Effect.gen(function* () {
      const store = yield* ResultStore
      const rows = rowsFor(n)
      for (let i = 0; i < n; i += 1000) yield* store.addResults(rows.slice(i, i + 1000))
      const profile = process.env.ROUND_PROFILE
      const session = profile ? yield* startProfile : undefined
      const threads0 = threadsCpu()
      const cpu0 = process.cpuUsage()
      const main0 = mainThreadCpu()
      const t0 = performance.now()
      const summary = yield* (yield* Reporter).runRound(DAY, { pace: false })
      const roundSeconds = (performance.now() - t0) / 1000
      const roundCpu = process.cpuUsage(cpu0)
      const roundMainCpu = mainThreadCpu() - main0
      // Delivery went on during the round; wait until the outbox has nothing queued (a message in
      // flight is still queued until its outcome is recorded).
      const outboxStore = yield* Outbox
      while ((yield* outboxStore.count("queued")) > 0) yield* Effect.sleep("20 millis")
      const delivered = yield* outboxStore.count("delivered")
      const seconds = (performance.now() - t0) / 1000
      const cpu = process.cpuUsage(cpu0)
      const mainCpu = mainThreadCpu() - main0
      // CPU ms per report of the main thread, the other threads' user time (V8's GC helpers above all)
      // and system time (libuv's pool: the `dir` transport's file operations), and the compose pool
      let otherUser = 0
      let otherSystem = 0
      let pool = 0
      for (const [tid, [user, system]] of threadsCpu()) {
        if (tid === String(process.pid)) continue
        const before = threads0.get(tid)
        if (before === undefined) pool += user + system
        else {
          otherUser += user - before[0]
          otherSystem += system - before[1]
        }
      }
      const perReport = (s: number) => Math.round((s * 1e5) / n) / 100
      const threadsMs = {
        main: perReport(mainCpu),
        otherUser: perReport(otherUser),
        otherSystem: perReport(otherSystem),
        pool: perReport(pool)
      }
      if (session !== undefined && profile !== undefined) yield* stopProfile(session, `${profile}.${n}`)
      const files = readdirSync(outbox).filter((f) => f.endsWith(".eml")).length
      if (summary.reports !== n || delivered !== n || files !== n) {
        throw new Error(
          `expected ${n} reports, got ${summary.reports} composed, ${delivered} delivered, ${files} files`
        )
      }
      // The cost floor: a bare RSA-2048 signature of each of the same messages.
      // (read one file at a time, timing only the signature)
      const emls = readdirSync(outbox).filter((f) => f.endsWith(".eml"))
      const keyObject = createPrivateKey(privateKeyPem)
      let signSeconds = 0
      for (const f of emls) {
        const m = readFileSync(join(outbox, f))
        const s0 = performance.now()
        sign("sha256", m, keyObject)
        signSeconds += (performance.now() - s0) / 1000
      }
      const messages = emls
      // The composer floor: composing and DKIM-signing the same reports (ReportMail on the pool),
      // no store, DNS or delivery: how much of the round is building and signing mail.
      const mail = yield* ReportMail
      const c0 = performance.now()
      yield* Effect.forEach(
        rows,
        (row) => {
          const report = RoundPlan.report(mail.submitter, row.policyDomain, DAY, row.results)
          const to = [Either.getOrThrow(EmailAddress.parse(`tlsrpt@${row.policyDomain.ascii}`))]
          return mail.compose({ report, policyDomain: row.policyDomain, day: DAY, to })
        },
        { concurrency: 16, discard: true }
      )
      const composeSeconds = (performance.now() - c0) / 1000
      rmSync(dir, { recursive: true, force: true })
      return {
        domains: n,
        reportsPerSec: Math.round(n / seconds),
        signFloorPerSec: Math.round(messages.length / signSeconds),
        composeFloorPerSec: Math.round(n / composeSeconds),
        seconds,
        roundSeconds,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        // CPU of all threads (main and compose pool) during the round alone: steadier than wall time on a
        // shared machine
        roundCpuSeconds: (roundCpu.user + roundCpu.system) / 1e6,
        // the main thread's CPU per report: until the round's end, and until all is delivered
        roundMainCpuMs: (roundMainCpu * 1000) / n,
        mainCpuMs: (mainCpu * 1000) / n,
        threadsMs
      }
    }).pipe(Effect.provide(env))
  })

/** Each size runs in a child process of its own, so one size's heap does not count in the next's RSS. */
const child = (n: number) =>
  Effect.async<Effect.Effect.Success<ReturnType<typeof runChild>>>((resume) => {
    execFile(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url)],
      { env: { ...process.env, ROUND_CHILD: String(n) }, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => {
        if (err) resume(Effect.die(new Error(`round ${n} failed: ${stderr || err.message}`)))
        else resume(Effect.succeed(JSON.parse(stdout.trim().split("\n").pop()!)))
      }
    )
  })

const runChild = (n: number) =>
  Effect.gen(function* () {
    const { privateKeyPem } = yield* generateDkimKeyPair("rsa-sha256")
    const base = process.memoryUsage().rss
    peakRss = base
    const r = yield* run(n, privateKeyPem)
    return { ...r, peakRssMb: Math.round(peakRss / 2 ** 20), baseRssMb: Math.round(base / 2 ** 20) }
  })

const main = Effect.gen(function* () {
  const results = []
  for (const n of sizes) {
    const r = yield* child(n)
    const ratio = r.signFloorPerSec / r.reportsPerSec
    results.push({ ...r, ratio })
    console.log(
      `round ${n} domains: ${r.reportsPerSec} reports/s (${r.seconds.toFixed(2)} s wall from the round's start to all delivered: the round ${r.roundSeconds.toFixed(2)} s (${r.roundCpuSeconds.toFixed(2)} s CPU) with delivery alongside, the last delivered ${(r.seconds - r.roundSeconds).toFixed(2)} s after it; ${r.cpuSeconds.toFixed(2)} s CPU), ` +
        `sign floor ${r.signFloorPerSec}/s, compose+DKIM alone ${r.composeFloorPerSec}/s, ratio ${ratio.toFixed(2)}, main thread ${r.roundMainCpuMs.toFixed(2)} ms CPU per report until the round's end (${r.mainCpuMs.toFixed(2)} ms until all delivered), peak RSS ${r.peakRssMb} MB (${r.baseRssMb} MB at start)`
    )
  }
  const base = results[0]!
  for (const r of results.slice(1)) {
    console.log(
      `linearity: ${r.domains} vs ${base.domains} domains: time ×${(r.seconds / base.seconds).toFixed(2)} for ×${(r.domains / base.domains).toFixed(2)} domains`
    )
  }
  const last = results[results.length - 1]!
  console.log(
    JSON.stringify({
      bench: "round",
      domains: last.domains,
      reportsPerSec: last.reportsPerSec,
      signFloorPerSec: last.signFloorPerSec,
      ratio: Math.round(last.ratio * 100) / 100,
      mainCpuMsPerReport: Math.round(last.mainCpuMs * 100) / 100,
      // all threads from the round's start until all is delivered, and by kind of thread
      cpuMsPerReport: Math.round((last.cpuSeconds * 1e5) / last.domains) / 100,
      threadsMsPerReport: last.threadsMs,
      peakRssMb: last.peakRssMb
    })
  )
})

const program = process.env.ROUND_CHILD
  ? runChild(Number(process.env.ROUND_CHILD)).pipe(Effect.map((r) => console.log(JSON.stringify(r))))
  : main

Effect.runPromise(program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => clearInterval(sampler),
  (e) => {
    clearInterval(sampler)
    console.error(e)
    process.exit(1)
  }
)
