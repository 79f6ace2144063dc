/**
 * `idle`: the worker (`Worker.layer`, everything `tlsrpt worker` runs) on the embedded default in a
 * temp data directory, on a TestClock: a simulated month of traffic through its Collector (OUTCOMES
 * a day over DOMAINS recipient domains, 5 % failures, spread over the hours) while the clock moves an
 * hour at a time, so the flush fiber, the report schedule and the delivery loop run as they would.
 * Prints the RSS at start (layers built), peak (the process's maxRSS) and end, the RSS after each
 * simulated week (steady: no growth from week to week), then one JSON line:
 *   {"bench":"idle","startRssMb":N,"peakRssMb":N,"endRssMb":N,"days":N}
 *
 * The TestClock only moves when told, and `TestClock.adjust("1 hour")` runs every sleep due in that
 * hour one by one: the delivery loop's polls (120 an hour) and the Collector's flush, which waits for
 * a row before it sleeps its interval (an idle collector sets no timer), so an hour of traffic costs a
 * few wake-ups of it rather than 3,600.
 * Knobs: DAYS (30; a fraction runs part of a day), OUTCOMES (a day, 50,000), DOMAINS (2,000).
 * `pnpm bench` runs the compiled build (dist/, as the systemd unit runs it), `pnpm bench:source`
 * the TypeScript sources through tsx, whose loader alone holds some 100 MB more.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Collector, type SessionOutcome } from "@tlsrpt/collector"
import { Domain } from "@tlsrpt/core"
import { Clock, Context, Effect, Layer, Logger, LogLevel, Redacted, TestClock, TestContext } from "effect"
import * as Config from "../src/Config.js"
import * as Worker from "../src/Worker.js"

const env = (name: string, d: number) => (process.env[name] === undefined ? d : Number(process.env[name]))
const DAYS = env("DAYS", 30)
const OUTCOMES = env("OUTCOMES", 50_000)
const DOMAINS = env("DOMAINS", 2_000)
const START = Date.UTC(2025, 0, 1)

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10

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

const program = Effect.gen(function* () {
  const dir = mkdtempSync(join(tmpdir(), "tlsrpt-idle-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  const config = yield* Config.load({
    configFile: undefined,
    env: { TLSRPT_DATA_DIR: dir, TLSRPT_HTTP_LISTEN: "127.0.0.1:0" },
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
      `external ${mb(heap.external)} MB`
  )
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
      yield* TestClock.adjust("1 hour")
      // Real time for the writer thread and the I/O the hour started.
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
    }
    if ((day + 1) % 7 === 0 || day + 1 >= DAYS) {
      const s = yield* collector.stats
      console.log(
        `day ${day + 1}: RSS ${mb(process.memoryUsage.rss())} MB, heap used ${mb(process.memoryUsage().heapUsed)} MB, ` +
          `${s.recorded.toLocaleString("en")} recorded, ${s.flushed.toLocaleString("en")} rows flushed in ${s.flushes} flushes`
      )
    }
  }
  yield* collector.flush
  global.gc?.()
  const endRss = process.memoryUsage.rss()
  const peakRss = process.resourceUsage().maxRSS * 1024
  console.log(
    `start ${mb(startRss)} MB, peak ${mb(peakRss)} MB, end ${mb(endRss)} MB; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`
  )
  console.log(
    JSON.stringify({
      bench: "idle",
      startRssMb: mb(startRss),
      peakRssMb: mb(peakRss),
      endRssMb: mb(endRss),
      days: DAYS
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
