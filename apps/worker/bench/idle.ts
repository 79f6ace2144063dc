/**
 * `idle`: the worker (`Worker.layer`, everything `tlsrpt worker` runs) on the embedded default in a
 * temp data directory, on a TestClock: a simulated month of traffic through its Collector (OUTCOMES
 * a day over DOMAINS recipient domains, 5 % failures, spread over the hours) while the clock moves an
 * hour at a time, so the flush fiber, the report schedule and the delivery loop run as they would.
 * Reports are on (the config `tlsrpt init` writes: submitter, RSA-2048 DKIM key): every day's round
 * looks up all DOMAINS recipient domains on a loopback DNS peer (IdleDnsPeer, its own process), a
 * tenth of which publish a TLSRPT record, composes and signs their reports on the compose pool and
 * writes them to the outbox folder; the round's paced hours move half a minute at a time.
 * Prints the RSS at start (layers built), peak (the process's maxRSS) and end, the RSS after each
 * simulated week (steady: no growth from week to week), then one JSON line:
 *   {"bench":"idle","startRssMb":N,"peakRssMb":N,"endRssMb":N,"restRssMb":N,"days":N,"reports":N}
 *
 * The TestClock only moves when told, and `TestClock.adjust("1 hour")` runs every sleep due in that
 * hour one by one: the delivery loop's safety-net passes (12 an hour on an empty outbox: it sleeps
 * until a message is due, docs/design.md#delivery-loop) and the Collector's flush, which waits for
 * a row before it sleeps its interval (an idle collector sets no timer), so an hour of traffic costs a
 * few wake-ups of it rather than 3,600.
 * Then it waits REST seconds of real time (65) with no traffic and prints the RSS at rest: the
 * threads' idle periods (writer thread 60 s, compose pool and outbox folder writer 30 s, the collector's kept keys 30 s) run on real time, which a TestClock
 * month compresses into minutes, so only then are they retired as on a real quiet host.
 * Each of these lines also gives the process's threads and, on Linux, its RSS by kind (anonymous:
 * heaps and malloc, glibc's main arena apart; file: mapped code). Knobs: HEAP_SNAPSHOT (a file: the main thread's heap at rest;
 * `<file>.start` also gets it at start, which costs the run some RSS), DAYS (30; a fraction runs part of a day), OUTCOMES (a day, 50,000), DOMAINS (2,000), REST (65).
 * `pnpm bench` bundles this file with the bin (apps/worker/bundle.mjs) and runs dist/bundle, as the
 * systemd unit runs the bin; `pnpm bench:source`
 * the TypeScript sources through tsx, whose loader alone holds some 100 MB more.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { writeHeapSnapshot } from "node:v8"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Collector, type SessionOutcome } from "@tlsrpt/collector"
import { Domain } from "@tlsrpt/core"
import { Clock, Context, Effect, Layer, Logger, LogLevel, Redacted, TestClock, TestContext } from "effect"
import * as Config from "../src/Config.js"
import * as Init from "../src/Init.js"
import * as Worker from "../src/Worker.js"

const env = (name: string, d: number) => (process.env[name] === undefined ? d : Number(process.env[name]))
const DAYS = env("DAYS", 30)
const OUTCOMES = env("OUTCOMES", 50_000)
const DOMAINS = env("DOMAINS", 2_000)
// past the writer thread's 60 s and the compose pool's, the outbox folder writer's and the collector's 30 s idle periods
const REST = env("REST", 65)
/** The daily round's hours: paced over `reports.window` (4 h) from 00:04–00:06 UTC. */
const ROUND_HOURS = 5
const START = Date.UTC(2025, 0, 1)

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10

/**
 * Threads and the RSS by kind from /proc/self/status, and of the anonymous part glibc's main arena
 * (the `[heap]` mapping in /proc/self/smaps): Linux; empty elsewhere.
 */
const procStatus = (): string => {
  try {
    const status = readFileSync("/proc/self/status", "utf8")
    const field = (name: string) => status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]
    const kb = (name: string) => `${mb(Number(field(name) ?? 0) * 1024)} MB`
    const arena = readFileSync("/proc/self/smaps", "utf8").match(/ \[heap\]\n(?:.*\n)*?Rss:\s+(\d+) kB/)?.[1]
    return (
      `; ${field("Threads")} threads, RSS anonymous ${kb("RssAnon")} ` +
      `(glibc main arena ${mb(Number(arena ?? 0) * 1024)} MB), file ${kb("RssFile")}`
    )
  } catch {
    return ""
  }
}

const outcomeAt = (n: number, failed: boolean, at: Date): SessionOutcome.SessionOutcome => {
  const recipient = `d${n}.example`
  const result = failed ? ("failure" as const) : ("success" as const)
  return {
    timestamp: at,
    recipientDomain: Domain.unsafeMake(recipient),
    mxHost: Domain.unsafeMake(`mx${n % 3}.${recipient}`),
    sendingIp: "192.0.2.1",
    receivingIp: `198.51.100.${n % 250}`,
    mxGreeting: `mx.${recipient} ESMTP`,
    policies: [
      n % 10 < 3
        ? {
            type: "sts",
            policyLines: ["version: STSv1", "mode: enforce", `mx: *.${recipient}`, "max_age: 604800"],
            mxPatterns: [`*.${recipient}`],
            result,
            ...(failed ? { failureDetails: [{ resultType: "certificate-expired" as const }] } : {})
          }
        : { type: "no-policy-found", scope: "recipient-domain", result },
      { type: "no-policy-found", scope: "mx-host", result }
    ]
  }
}

/**
 * The DNS peer (IdleDnsPeer) in a child process; its `host:port`. It ends when this process closes
 * its stdin (at the end of the scope, or when this process dies).
 */
const dnsPeer = Effect.acquireRelease(
  Effect.async<{ readonly address: string; readonly stop: () => void }>((resume) => {
    const file = fileURLToPath(
      new URL(`./IdleDnsPeer.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url)
    )
    const child = spawn(process.execPath, [...process.execArgv, file], { stdio: ["pipe", "pipe", "inherit"] })
    child.stdout.once("data", (line: Buffer) =>
      resume(Effect.succeed({ address: line.toString().trim(), stop: () => child.stdin.end() }))
    )
  }),
  (peer) => Effect.sync(peer.stop)
)

/**
 * The worker's config: what `tlsrpt init --domain reports.example` writes (submitter, an RSA-2048
 * DKIM key), data in the temp dir, DNS on the loopback peer, the admin server on an ephemeral port;
 * reports go to the embedded default's outbox folder.
 */
const writeConfig = (dir: string, dns: string) =>
  Effect.gen(function* () {
    const configFile = join(dir, "tlsrpt.json")
    yield* Init.run({ domain: "reports.example", configFile, selector: "idle", algorithm: "rsa-sha256", force: false })
    const json = JSON.parse(readFileSync(configFile, "utf8"))
    // per-try timeout long on the TestClock: a lookup in flight while the clock moves on for 20 steps still answers
    json.dns = { servers: [dns], timeoutMs: 60_000, tries: 10 }
    json.http.listen = "127.0.0.1:0"
    writeFileSync(configFile, JSON.stringify(json))
    return configFile
  })

const countFiles = (dir: string, suffix: string) =>
  readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(suffix)).length

const program = Effect.gen(function* () {
  const dir = mkdtempSync(join(tmpdir(), "tlsrpt-idle-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  const peer = yield* dnsPeer
  const config = yield* Config.load({
    configFile: yield* writeConfig(dir, peer.address),
    env: {},
    cwd: dir
  })
  yield* TestClock.setTime(START)
  console.log(
    `idle: ${DAYS} days × ${OUTCOMES.toLocaleString("en")} outcomes over ${DOMAINS.toLocaleString("en")} domains, ` +
      `embedded default, node ${process.version} ${process.execArgv.filter((a) => a.startsWith("--max")).join(" ")}; ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`
  )
  const ctx = yield* Layer.build(Worker.layer(config, Redacted.make("idle-bench-token-0123456789")))
  const collector = Context.get(ctx, Collector)
  global.gc?.()
  const startRss = process.memoryUsage.rss()
  const heap = process.memoryUsage()
  console.log(
    `start (layers built): RSS ${mb(startRss)} MB, of which V8 heap ${mb(heap.heapUsed)} MB used of ${mb(heap.heapTotal)} MB, ` +
      `external ${mb(heap.external)} MB${procStatus()}`
  )
  if (process.env.HEAP_SNAPSHOT)
    console.log(`heap snapshot: ${writeHeapSnapshot(`${process.env.HEAP_SNAPSHOT}.start`)}`)
  const perHour = Math.floor(OUTCOMES / 24)
  let i = 0
  for (let day = 0; day < DAYS; day++) {
    // a fractional DAYS (0.25) ends within its last day: a quick look on a busy machine
    for (let hour = 0; hour < Math.min(24, Math.round((DAYS - day) * 24)); hour++) {
      const at = new Date(yield* Clock.currentTimeMillis)
      for (let k = 0; k < perHour; k++, i++) {
        const n = (i * 7919) % DOMAINS
        yield* collector.record(outcomeAt(n, i % 20 === 0, at))
      }
      if (hour < ROUND_HOURS) {
        // The round's hours (00:04 to about 04:06, paced): half a minute at a time, each with real time for
        // its DNS lookups, compose threads and file writes, so no lookup sees the clock leap past its
        // deadline.
        for (let step = 0; step < 120; step++) {
          yield* TestClock.adjust("30 seconds")
          yield* Effect.promise(() => new Promise((r) => setTimeout(r, 2)))
        }
      } else {
        yield* TestClock.adjust("1 hour")
        // Real time for the writer thread and the I/O the hour started.
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
      }
    }
    if ((day + 1) % 7 === 0 || day + 1 >= DAYS) {
      const s = yield* collector.stats
      const m = process.memoryUsage()
      console.log(
        `day ${day + 1}: RSS ${mb(m.rss)} MB, heap used ${mb(m.heapUsed)} of ${mb(m.heapTotal)} MB, external ${mb(m.external)} MB, ` +
          `${s.recorded.toLocaleString("en")} recorded, ${s.flushed.toLocaleString("en")} rows flushed in ${s.flushes} flushes${procStatus()}`
      )
    }
  }
  yield* collector.flush
  global.gc?.()
  const endRss = process.memoryUsage.rss()
  const peakRss = process.resourceUsage().maxRSS * 1024
  // The threads' idle periods run on real time (a TestClock month passes in minutes, so the writer
  // thread never idles during it): at rest is after REST seconds of real time without traffic.
  yield* Effect.promise(() => new Promise((r) => setTimeout(r, REST * 1000)))
  global.gc?.()
  const restRss = process.memoryUsage.rss()
  if (process.env.HEAP_SNAPSHOT) console.log(`heap snapshot: ${writeHeapSnapshot(process.env.HEAP_SNAPSHOT)}`)
  const reports = countFiles(dir, ".eml")
  const h = process.memoryUsage()
  console.log(
    `${reports.toLocaleString("en")} reports written by the rounds; at rest heap used ${mb(h.heapUsed)} of ${mb(h.heapTotal)} MB, ` +
      `external ${mb(h.external)} MB${procStatus()}`
  )
  console.log(
    `start ${mb(startRss)} MB, peak ${mb(peakRss)} MB, end ${mb(endRss)} MB, at rest (${REST} s later) ${mb(restRss)} MB; ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`
  )
  console.log(
    JSON.stringify({
      bench: "idle",
      startRssMb: mb(startRss),
      peakRssMb: mb(peakRss),
      endRssMb: mb(endRss),
      restRssMb: mb(restRss),
      days: DAYS,
      reports
    })
  )
})

Effect.runPromise(
  program.pipe(
    Effect.scoped,
    Effect.provide(Layer.merge(TestContext.TestContext, NodeContext.layer)),
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )
).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
