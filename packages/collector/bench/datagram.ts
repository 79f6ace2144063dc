/**
 * `datagram`: Postfix/libtlsrpt datagrams into the DatagramSource → Collector → SQLite file.
 *
 * 1. Throughput: a C sender (bench/libtlsrpt-sender.c, compiled with `cc -O2` here) writes 200,000
 *    datagrams in libtlsrpt's exact format over 10,000 domains, 5 % failures, with blocking sends (as
 *    fast as the socket takes them). Timed from the first send to all rows committed (the source's
 *    scope closed: socket drained, final flush done). Three runs on fresh files; the median is printed.
 * 2. Offered load: non-blocking sends (MSG_DONTWAIT, as Postfix sends) paced at 10k, 50k and 100k
 *    datagrams/s for 2 s each; a full receive queue (EAGAIN) is a datagram Postfix would lose. The
 *    sender sleeps whenever it is STEP_US (default 50) ahead of schedule, i.e. close to evenly
 *    spaced, as many smtp processes each reporting its own delivery are; 50k/s is also run with
 *    1 ms steps (bursts of 50 back to back, 5 times the kernel's queue) and printed apart. The
 *    datagrams leave from 64 sockets in turn: Postfix sends each report from a socket of its own
 *    (postfix/src/tls/tlsrpt_wrapper.c opens and closes libtlsrpt's connection per report), so only
 *    the receiving socket's queue bounds what waits. From one socket, its send buffer
 *    (net.core.wmem_default, 208 KiB, about 200 of these datagrams) fills after a 4 ms pause of the
 *    receiver at 50k/s, before the receiving queue (2048 deployed) does.
 *
 * The kernel's queue for a Unix datagram socket is `net.unix.max_dgram_qlen` datagrams (10 by
 * default): the figures depend on it, and it is printed (run again after `sysctl -w
 * net.unix.max_dgram_qlen=2048`, deploy/sysctl.d/60-tlsrpt.conf, for the deployed figure). 50k/s is
 * also offered to a bare C receiver that only calls recv(2) (bench/bare-receiver.c): the drops no
 * collector can avoid at that queue on this machine. Peak RSS is the process's maxRSS before
 * the floor (a bare node-unix-socket receiver, whose unbounded drain is what the source avoids) runs.
 *   {"bench":"datagram","datagramsPerSec":N,"mainCpuUsPerDatagram":N,"cpuUsPerDatagram":N,"dropsAt50k":N,…,"senderSockets":N,"peakRssMb":N,…}
 * CPU per datagram (throughput runs, median): the main thread's own, and all threads' (receiver,
 * writer, GC helpers) together; steadier than datagrams/s on a shared machine.
 * The Collector writes through its writer thread (`WriterThread.layer`), as in the worker.
 * Knobs: SENDER_SOCKETS (default 64; 1: one socket, as the bench sent before), DROP_TRACE=FILE (the sender appends its drops per 10 ms), DATAGRAMS, DOMAINS, RUNS (0: the offered loads only), LOAD_SECONDS, STEP_US, THREADS=1 (each thread's CPU per run); WARM=1 (the writer thread started before the clock, as in the ingest bench); FLUSH_ROWS, FLUSH_INTERVAL_MS (the Collector's, default as in the worker);
 * STORE=thread|inline (inline: `addResults` on the receiving thread, as before WriterThread).
 */
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { ResultStore, Store } from "@tlsrpt/store"
import { allThreads, mainThreadMs, type ThreadTimes } from "@tlsrpt/testkit/ThreadCpu"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { DgramSocket } from "node-unix-socket"
import { Collector, type CollectorConfig } from "../src/Collector.js"
import { DatagramSource } from "../src/DatagramSource.js"
import * as WriterThread from "../src/WriterThread.js"

const env = (name: string, d: number) => (process.env[name] === undefined ? d : Number(process.env[name]))
const DATAGRAMS = env("DATAGRAMS", 200_000)
const DOMAINS = env("DOMAINS", 10_000)
const RUNS = env("RUNS", 3)
const LOAD_SECONDS = env("LOAD_SECONDS", 2)
const STEP_US = env("STEP_US", 50)
const FAILURE_PERMILLE = 50
const STORE = process.env.STORE ?? "thread"
/** Offered loads: the sockets the datagrams leave from in turn (bench/libtlsrpt-sender.c). */
const SENDER_SOCKETS = env("SENDER_SOCKETS", 64)
const collectorConfig: CollectorConfig = {
  ...(process.env.FLUSH_ROWS === undefined ? {} : { flushRows: Number(process.env.FLUSH_ROWS) }),
  ...(process.env.FLUSH_INTERVAL_MS === undefined ? {} : { flushInterval: Number(process.env.FLUSH_INTERVAL_MS) })
}

const work = mkdtempSync(join(tmpdir(), "tlsrpt-bench-dgram-"))
const sender = join(work, "sender")
// Beside this file when run from source; two levels up from dist/bench when compiled; from the
// worker's bundle (apps/worker/dist/bundle), in this package.
const senderSource = [
  join(import.meta.dirname, "libtlsrpt-sender.c"),
  join(import.meta.dirname, "../../bench/libtlsrpt-sender.c"),
  join(import.meta.dirname, "../../../../packages/collector/bench/libtlsrpt-sender.c")
].find((p) => existsSync(p))!
execFileSync("cc", ["-O2", "-o", sender, senderSource])
const bareReceiver = join(work, "bare-receiver")
execFileSync("cc", ["-O2", "-o", bareReceiver, join(dirname(senderSource), "bare-receiver.c")])

interface Sent {
  readonly sent: number
  readonly drops: number
  readonly errors: number
  readonly seconds: number
  /** the sender process's own CPU (user + system): it shares the machine's cores with the collector */
  readonly cpuSeconds: number
}

const runSender = (socket: string, count: number, rate: number, stepUs = STEP_US) =>
  Effect.async<Sent>((resume) => {
    const child = spawn(sender, [
      socket,
      String(count),
      String(DOMAINS),
      String(FAILURE_PERMILLE),
      String(rate),
      String(stepUs),
      String(SENDER_SOCKETS)
    ])
    let out = ""
    child.stdout.on("data", (d) => {
      out += d
    })
    child.stderr.pipe(process.stderr)
    child.on("close", () => resume(Effect.succeed(JSON.parse(out) as Sent)))
  })

/** Source + collector + SQLite file; `use` runs with the socket listening; returns when everything is committed. */
const withSource = <A>(name: string, use: (socket: string) => Effect.Effect<A>) =>
  Effect.gen(function* () {
    const socket = join(work, `${name}.sock`)
    const filename = join(work, `${name}.db`)
    const scope = yield* Scope.make()
    const file = yield* Layer.buildWithScope(Store.layer({ filename }), scope).pipe(Effect.orDie)
    const writer =
      STORE === "inline"
        ? undefined
        : yield* Layer.buildWithScope(
            WriterThread.layer({ filename }).pipe(Layer.provide(Layer.succeedContext(file))),
            scope
          )
    // WARM=1: as in the ingest bench, the writer thread is started before the clock (it starts with
    // its first batch and then stays while batches come, so a sustained stream does not pay its start:
    // loading effect and the store is ~0.45 s of CPU and its GC, a fifth of a run's CPU). Off by
    // default: peak RSS was ~9 MB higher with it (204-205 MB against 194-196, load 9-12).
    if (writer !== undefined && process.env.WARM === "1")
      yield* Context.get(writer, WriterThread.BatchWriter).write(WriterThread.encodeBatch([])).pipe(Effect.orDie)
    const ctx = yield* Layer.buildWithScope(
      DatagramSource.layer({ socket }).pipe(
        Layer.provideMerge(Collector.layer(collectorConfig)),
        Layer.provideMerge(Layer.succeedContext(writer === undefined ? file : Context.merge(file, writer)))
      ),
      scope
    ).pipe(Effect.orDie)
    const a = yield* use(socket)
    yield* Scope.close(scope, Exit.void)
    const stats = yield* Context.get(ctx, DatagramSource).stats
    return { a, stats, filename }
  })

const countRows = (filename: string) =>
  Effect.scoped(
    Layer.build(Store.layer({ filename })).pipe(
      Effect.flatMap((ctx) => Context.get(ctx, ResultStore).listResults()),
      Effect.map((rows) => {
        let sessions = 0
        for (const r of rows)
          for (const p of r.results)
            sessions += p.summary.totalSuccessfulSessionCount + p.summary.totalFailureSessionCount
        return { rows: rows.length, sessions }
      })
    )
  )

/**
 * The floor on this machine right now: the same sender into a bare node-unix-socket receiver that only
 * counts (no decoding, no store). The kernel queue and the CPU share set it, not the collector.
 */
const floor = Effect.gen(function* () {
  const socket = join(work, "floor.sock")
  const rx = new DgramSocket()
  let n = 0
  rx.on("data", () => {
    n++
  })
  rx.bind(socket)
  const t0 = performance.now()
  yield* runSender(socket, DATAGRAMS, 0)
  while (n < DATAGRAMS) yield* Effect.sleep(1)
  rx.close()
  return DATAGRAMS / ((performance.now() - t0) / 1000)
})

/**
 * The floor for drops: the same offered load into a C receiver that does nothing but recv(2)
 * (bench/bare-receiver.c). What it loses is the kernel's queue and this machine's CPU share, which
 * no collector design can beat.
 */
const bareDrops = (load: number) =>
  Effect.gen(function* () {
    const socket = join(work, `bare${load}.sock`)
    const child = spawn(bareReceiver, [socket])
    const lines: Array<string> = []
    let ready: (() => void) | undefined
    child.stdout.on("data", (d: Buffer) => {
      lines.push(
        ...String(d)
          .split("\n")
          .filter((l) => l !== "")
      )
      if (lines[0] === "ready") ready?.()
    })
    const closed = new Promise<void>((r) => child.on("close", () => r()))
    yield* Effect.promise(
      () =>
        new Promise<void>((r) => {
          if (lines[0] === "ready") r()
          else ready = r
        })
    )
    const sent = yield* runSender(socket, load * LOAD_SECONDS, load)
    yield* Effect.promise(() => closed)
    return { drops: sent.drops, received: Number(lines[1]) }
  })

// Where the memory is: the highest heap, external and RSS seen, sampled every 50 ms.
const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 }
setInterval(() => {
  const m = process.memoryUsage()
  peak.rss = Math.max(peak.rss, m.rss)
  peak.heapTotal = Math.max(peak.heapTotal, m.heapTotal)
  peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed)
  peak.external = Math.max(peak.external, m.external)
}, 50).unref()
const mb = (n: number) => Math.round(n / 1024 / 1024)

/** Every thread's CPU ms by tid (THREADS=1 prints the busiest ones per run, with their system part). */
const lastTimes = new Map<string, ThreadTimes>() // kept for a thread that has ended since
const threadCpuMs = (): Map<string, number> => {
  const now = allThreads()
  for (const [tid, t] of now) lastTimes.set(tid, t)
  return new Map([...now].map(([tid, t]) => [tid, t.ms]))
}
const printThreads = (before: Map<string, number>, atEnd: Map<string, number>) => {
  const after = new Map([...atEnd, ...threadCpuMs()])
  console.log(
    `threads' CPU ms (tid: ms): ${[...after]
      .map(([t, ms]) => [t, ms - (before.get(t) ?? 0)] as const)
      .filter(([, ms]) => ms >= 30)
      .sort((a, b) => b[1] - a[1])
      .map(([t, ms]) => `${t === String(process.pid) ? "main" : t}: ${ms} (system ${lastTimes.get(t)?.systemMs})`)
      .join(", ")}`
  )
}
const processCpuMs = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

const program = Effect.gen(function* () {
  const qlen = readFileSync("/proc/sys/net/unix/max_dgram_qlen", "utf8").trim()
  console.log(
    `net.unix.max_dgram_qlen = ${qlen}; store ${STORE}; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`
  )
  const rates: Array<number> = []
  const mainUs: Array<number> = []
  const processUs: Array<number> = []
  const senderUs: Array<number> = []
  for (let run = 0; run < RUNS; run++) {
    // From the first send (the receiver thread is up), as the issue times it; CPU too, so that the
    // threads' start (WARM) is not counted.
    let main0 = 0
    let process0 = 0
    let threads0 = threadCpuMs()
    let threadsAtEnd = threads0
    let t0 = 0
    const {
      a: sent,
      stats,
      filename
    } = yield* withSource(`run${run}`, (socket) =>
      Effect.suspend(() => {
        main0 = mainThreadMs()
        process0 = processCpuMs()
        threads0 = threadCpuMs()
        t0 = performance.now()
        return runSender(socket, DATAGRAMS, 0).pipe(
          Effect.tap(() => {
            // The receiver and writer threads end with the scope: their CPU is read while they run.
            threadsAtEnd = threadCpuMs()
          })
        )
      })
    )
    const seconds = (performance.now() - t0) / 1000
    const main1 = mainThreadMs()
    const process1 = processCpuMs()
    if (process.env.THREADS === "1") printThreads(threads0, threadsAtEnd)
    const stored = yield* countRows(filename).pipe(Effect.orDie)
    if (stats.stored !== DATAGRAMS || stored.sessions !== DATAGRAMS || stored.rows !== DOMAINS)
      throw new Error(
        `run ${run}: sent ${sent.sent}, stored ${stats.stored}, ${stored.sessions} sessions in ${stored.rows} rows`
      )
    const rate = DATAGRAMS / seconds
    rates.push(rate)
    // Counted before the rows (countRows) are read back: the source, collector and writer only.
    mainUs.push(((main1 - main0) * 1000) / DATAGRAMS)
    processUs.push(((process1 - process0) * 1000) / DATAGRAMS)
    senderUs.push((sent.cpuSeconds * 1e6) / DATAGRAMS)
    console.log(
      `run ${run + 1}: ${DATAGRAMS} datagrams in ${seconds.toFixed(2)} s = ${Math.round(rate)}/s to all rows committed (sender alone ${sent.seconds.toFixed(2)} s), ${stored.rows} rows; CPU per datagram: main thread ${mainUs.at(-1)!.toFixed(2)} µs, all threads ${processUs.at(-1)!.toFixed(2)} µs, the sender ${senderUs.at(-1)!.toFixed(2)} µs; peak so far: RSS ${mb(peak.rss)} MB, heap ${mb(peak.heapUsed)} MB, external ${mb(peak.external)} MB`
    )
  }
  const drops: Record<number, number> = {}
  for (const load of [10_000, 50_000, 100_000]) {
    const threads0 = threadCpuMs()
    let threadsAtEnd = threads0
    const { a: sent, stats } = yield* withSource(`load${load}`, (socket) =>
      runSender(socket, load * LOAD_SECONDS, load).pipe(
        Effect.tap(() => {
          threadsAtEnd = threadCpuMs()
        })
      )
    )
    if (process.env.THREADS === "1") printThreads(threads0, threadsAtEnd)
    drops[load] = sent.drops
    console.log(
      `offered ${load}/s for ${LOAD_SECONDS} s (non-blocking, ${STEP_US} µs steps): ${sent.drops} dropped (EAGAIN) of ${load * LOAD_SECONDS}, ${stats.stored} stored, achieved ${Math.round((load * LOAD_SECONDS) / sent.seconds)}/s offered`
    )
  }
  const floorDrops = yield* bareDrops(50_000)
  console.log(
    `floor: offered 50000/s for ${LOAD_SECONDS} s into a bare C receiver (recv only), max_dgram_qlen ${qlen}: ${floorDrops.drops} dropped (EAGAIN) of ${50_000 * LOAD_SECONDS}, ${floorDrops.received} received`
  )
  const { a: burst } = yield* withSource("burst", (socket) => runSender(socket, 50_000 * LOAD_SECONDS, 50_000, 1000))
  console.log(
    `offered 50000/s for ${LOAD_SECONDS} s in 1 ms bursts: ${burst.drops} dropped (EAGAIN) of ${50_000 * LOAD_SECONDS}`
  )
  const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024)
  console.log(`floor (bare receiver, counting only): ${Math.round(yield* floor)}/s`)
  const datagramsPerSec = Math.round(median(rates))
  console.log(
    `median ${datagramsPerSec} datagrams/s; peak RSS ${peakRssMb} MB (main thread's heap at most ${mb(peak.heapTotal)} MB, ${mb(peak.heapUsed)} MB used); load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`
  )
  console.log(
    JSON.stringify({
      bench: "datagram",
      datagramsPerSec,
      mainCpuUsPerDatagram: Number(median(mainUs).toFixed(2)),
      cpuUsPerDatagram: Number(median(processUs).toFixed(2)),
      senderCpuUsPerDatagram: Number(median(senderUs).toFixed(2)),
      dropsAt50k: drops[50_000],
      dropsAt50kBareReceiver: floorDrops.drops,
      maxDgramQlen: Number(qlen),
      senderSockets: SENDER_SOCKETS,
      peakRssMb,
      dropsAt50kBursts: burst.drops
    })
  )
})

Effect.runPromise(program.pipe(Effect.ensuring(Effect.sync(() => rmSync(work, { recursive: true, force: true })))))
