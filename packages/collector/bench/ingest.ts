/**
 * `ingest`: 1,000,000 session outcomes over 10,000 recipient domains × 3 MX hosts each, 5 % failures,
 * through `Collector.record` (default config unless overridden) into a SQLite file (`Store.layer`)
 * written by the collector's writer thread (`WriterThread.layer`), as in the worker.
 * Three runs, each on a fresh file in a temp directory (deleted afterwards). Prints outcomes/s
 * (median), flush latency (one `addResults` transaction, p99 over all runs), peak RSS and the database
 * size (with WAL), then one JSON line:
 *   {"bench":"ingest","outcomesPerSec":N,"recordAllPerSec":N,"mainCpuUsPerOutcome":N,
 *    "recordAllMainCpuUsPerOutcome":N,"peakRssMb":N,"recordAllPeakRssMb":N,"dbMb":N,"flushP99Ms":N}
 * `mainCpuUsPerOutcome`: the main thread's own CPU time in the record loop per outcome (median),
 * steadier than wall time on a shared machine.
 * `recordAllPerSec`: the same outcomes through `Collector.recordAll` in slices of BATCH (1,000), as
 * many runs after the `record` runs; `peakRssMb` is the peak before them (the `record` runs'),
 * `recordAllPeakRssMb` the process's peak at the end.
 *
 * The timed part is from the first `record` to the end of the final flush (scope closed); each run
 * prints how much of it was the record loop and how much the final flush. The writer thread is
 * started before the clock (as the store is opened and migrated before it): it starts with its first
 * batch and then stays while batches come, so a sustained ingest does not pay for its start. Outcomes
 * are drawn uniformly at random (seeded) from 60,000 prebuilt ones (domain × MX host × success or
 * failure), so the figure measures the collector and the store, not the generator. `SOURCE=fresh`
 * builds each outcome in the timed loop instead, as an MTA does: new objects around the domains,
 * policy lines, addresses and greeting it keeps per destination (the generator's allocation is then
 * in the figure). Drawn at random over 60,000 prebuilt outcomes, most of the recording thread's time
 * is waiting for memory (docs/design.md#recording-cost). One UTC day:
 * 40,000 distinct keys (each session touches the recipient-domain row and the MX-host row).
 *
 * The flush latency is wall time: the store yields while it writes, so recording goes on meanwhile
 * and a flush lasts about twice its own work. The peak RSS includes the tsx loader (~35 MB) and the
 * 60,000 prebuilt outcomes (~45 MB of live heap, which V8 multiplies when sizing the old space).
 *
 * Knobs (environment, for exploring): OUTCOMES, DOMAINS, RUNS, ALONE_RUNS, BATCH, SOURCE=templates|fresh, FLUSH_ROWS, FLUSH_INTERVAL_MS,
 * MAX_PENDING_KEYS, ORDER=random|grouped (grouped: a domain's sessions come in runs of 100),
 * STORE=thread|inline (inline: `addResults` on the recording thread, as before WriterThread).
 *
 * "collector alone" discards the batches after the collector has made them: encoded for the writer
 * thread (`BatchWriter`), or as rows with STORE=inline.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Day, Domain } from "@tlsrpt/core"
import { type NewResultRow, ResultStore, Store } from "@tlsrpt/store"
import { mainThreadMs } from "@tlsrpt/testkit/ThreadCpu"
import { Context, Effect, Layer, Option } from "effect"
import { Collector, type CollectorConfig } from "../src/Collector.js"
import type * as SessionOutcome from "../src/SessionOutcome.js"
import * as WriterThread from "../src/WriterThread.js"

const env = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name])
const OUTCOMES = env("OUTCOMES") ?? 1_000_000
const DOMAINS = env("DOMAINS") ?? 10_000
const RUNS = env("RUNS") ?? 3
/** Runs of "collector alone" (0: none). */
const ALONE_RUNS = env("ALONE_RUNS") ?? 3
/** Outcomes per `recordAll` call in the second figure (0: no `recordAll` runs). */
const BATCH = env("BATCH") ?? 1000
const MX_PER_DOMAIN = 3
const FAILURE_RATE = 0.05
const ORDER = process.env.ORDER ?? "random"
const STORE = process.env.STORE ?? "thread"
const SOURCE = process.env.SOURCE ?? "templates"
const config: CollectorConfig = {
  ...(env("FLUSH_ROWS") === undefined ? {} : { flushRows: env("FLUSH_ROWS") }),
  ...(env("FLUSH_INTERVAL_MS") === undefined ? {} : { flushInterval: env("FLUSH_INTERVAL_MS")! }),
  ...(env("MAX_PENDING_KEYS") === undefined ? {} : { maxPendingKeys: env("MAX_PENDING_KEYS") })
}

// --- the outcomes -------------------------------------------------------------------------------
const T0 = new Date(Date.UTC(2025, 0, 15, 12))

/** mulberry32: a small seeded PRNG, so every run sees the same sequence. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * What an MTA keeps per destination and reuses for every session: the domains, the MTA-STS policy's
 * lines and patterns, the MX hosts' addresses and greetings.
 */
interface DomainCache {
  readonly recipientDomain: Domain.Domain
  readonly policyLines: ReadonlyArray<string>
  readonly mxPatterns: ReadonlyArray<string>
  readonly mxHosts: ReadonlyArray<Domain.Domain>
  readonly receivingIps: ReadonlyArray<string>
  readonly greetings: ReadonlyArray<string>
}

const TLSA = ["3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]

const buildCaches = (): Array<DomainCache> =>
  Array.from({ length: DOMAINS }, (_, n) => {
    const recipient = `d${n}.example`
    const mxNames = Array.from({ length: MX_PER_DOMAIN }, (_, m) => `mx${m}.${recipient}`)
    return {
      recipientDomain: Domain.unsafeMake(recipient),
      policyLines: ["version: STSv1", "mode: enforce", `mx: *.${recipient}`, "max_age: 604800"],
      mxPatterns: [`*.${recipient}`],
      mxHosts: mxNames.map((name) => Domain.unsafeMake(name)),
      receivingIps: mxNames.map((_, m) => `198.51.${n % 256}.${m + 1}`),
      greetings: mxNames.map((name) => `${name} ESMTP`)
    }
  })

/**
 * The outcome of a session to MX host `m` of domain `n`, built as an MTA builds it: new objects
 * around the values it keeps per destination.
 */
const outcomeOf = (caches: ReadonlyArray<DomainCache>, n: number, m: number, failed: boolean) => {
  const c = caches[n]!
  const mxHost = c.mxHosts[m]!
  const result = failed ? ("failure" as const) : ("success" as const)
  // 30 % of domains publish MTA-STS, 10 % have DANE on their MX hosts.
  const recipientPolicy: SessionOutcome.SessionPolicy =
    n % 10 < 3
      ? {
          type: "sts",
          policyLines: c.policyLines,
          mxPatterns: c.mxPatterns,
          result,
          ...(failed ? { failureDetails: [{ resultType: "certificate-host-mismatch" as const }] } : {})
        }
      : {
          type: "no-policy-found",
          scope: "recipient-domain",
          result,
          ...(failed ? { failureDetails: [{ resultType: "certificate-expired" as const }] } : {})
        }
  const hostPolicy: SessionOutcome.SessionPolicy =
    n % 10 === 9
      ? {
          type: "tlsa",
          records: TLSA,
          baseDomain: mxHost,
          result,
          ...(failed
            ? { failureDetails: [{ resultType: "validation-failure" as const, reasonCode: "dane-no-match" }] }
            : {})
        }
      : { type: "no-policy-found", scope: "mx-host", result }
  return {
    timestamp: T0,
    recipientDomain: c.recipientDomain,
    mxHost,
    sendingIp: "192.0.2.1",
    receivingIp: c.receivingIps[m]!,
    mxGreeting: c.greetings[m]!,
    policies: [recipientPolicy, hostPolicy]
  } satisfies SessionOutcome.SessionOutcome
}

/** Every distinct outcome, prebuilt: index `(n × MX_PER_DOMAIN + m) × 2 + failed` (`buildSequence`). */
const buildTemplates = (caches: ReadonlyArray<DomainCache>): Array<SessionOutcome.SessionOutcome> => {
  const out: Array<SessionOutcome.SessionOutcome> = []
  for (let n = 0; n < DOMAINS; n++)
    for (let m = 0; m < MX_PER_DOMAIN; m++)
      for (const failed of [false, true]) out.push(outcomeOf(caches, n, m, failed))
  return out
}

/**
 * The outcomes by their index in the sequence: the prebuilt template (`SOURCE=templates`), or a new
 * outcome built from the per-destination values (`SOURCE=fresh`), inside the timed loop.
 */
const source = (caches: ReadonlyArray<DomainCache>): ((k: number) => SessionOutcome.SessionOutcome) => {
  if (SOURCE === "fresh") {
    const pairs = MX_PER_DOMAIN * 2
    return (k) => outcomeOf(caches, Math.floor(k / pairs), (k >> 1) % MX_PER_DOMAIN, (k & 1) === 1)
  }
  const templates = buildTemplates(caches)
  return (k) => templates[k]!
}

/** Template index of each outcome: domain, MX host and failure drawn at random (seeded). */
const buildSequence = (): Int32Array => {
  const random = prng(8460)
  const seq = new Int32Array(OUTCOMES)
  for (let i = 0; i < OUTCOMES; i++) {
    const n = ORDER === "grouped" ? Math.floor(i / 100) % DOMAINS : Math.floor(random() * DOMAINS)
    const m = Math.floor(random() * MX_PER_DOMAIN)
    const failed = random() < FAILURE_RATE ? 1 : 0
    seq[i] = (n * MX_PER_DOMAIN + m) * 2 + failed
  }
  return seq
}

// --- one run ------------------------------------------------------------------------------------
interface RunResult {
  readonly seconds: number
  /** The record loop alone; the rest of `seconds` is the final flush (closing the collector's scope). */
  readonly recordSeconds: number
  /** CPU seconds of the main thread in the record loop (NaN off Linux). */
  readonly recordCpuSeconds: number
  readonly flushMs: ReadonlyArray<number>
  readonly flushedRows: number
  /** The file with its WAL, right after the final flush. */
  readonly dbBytes: number
  /** After the database was closed (WAL checkpointed). */
  readonly closedBytes: number
  readonly rows: number
}

const dirBytes = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0)

/**
 * The store with each write timed: one `addResults` call, or one `BatchWriter.write` (the writer
 * thread's port the Collector uses when it is there), is one flush (one transaction).
 */
const timed = (ctx: Context.Context<ResultStore>, flushMs: Array<number>) => {
  const time = <E>(write: Effect.Effect<void, E>) =>
    Effect.suspend(() => {
      const t = performance.now()
      return write.pipe(Effect.ensuring(Effect.sync(() => flushMs.push(performance.now() - t))))
    })
  const store = Context.get(ctx, ResultStore)
  const timedStore = Context.make(ResultStore, {
    ...store,
    addResults: (rows: ReadonlyArray<NewResultRow>) => time(store.addResults(rows))
  })
  return Option.match(Context.getOption(ctx, WriterThread.BatchWriter), {
    onNone: () => timedStore,
    onSome: (writer) =>
      Context.add(timedStore, WriterThread.BatchWriter, { write: (batch: Uint8Array) => time(writer.write(batch)) })
  })
}

/** Records the outcomes one `record` at a time, or in slices of `BATCH` through `recordAll`. */
const recordLoop = (
  collector: Context.Tag.Service<Collector>,
  outcome: (k: number) => SessionOutcome.SessionOutcome,
  seq: Int32Array,
  batch: number
) =>
  Effect.gen(function* () {
    if (batch === 0) {
      for (let i = 0; i < seq.length; i++) yield* collector.record(outcome(seq[i]!))
      return
    }
    const slice: Array<SessionOutcome.SessionOutcome> = new Array(batch)
    for (let i = 0; i < seq.length; i += batch) {
      const n = Math.min(batch, seq.length - i)
      slice.length = n
      for (let j = 0; j < n; j++) slice[j] = outcome(seq[i + j]!)
      yield* collector.recordAll(slice)
    }
  })

const run = (outcome: (k: number) => SessionOutcome.SessionOutcome, seq: Int32Array, batch = 0) =>
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "tlsrpt-ingest-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const filename = join(dir, "results.db")
    const flushMs: Array<number> = []
    const { seconds, recordSeconds, recordCpuSeconds, collector, dbBytes } = yield* Effect.scoped(
      Effect.gen(function* () {
        // The store is opened (and migrated) before the clock starts.
        const file = Store.layer({ filename })
        // STORE=inline: addResults on this thread, as before the writer thread (for comparison).
        const built: Context.Context<ResultStore> =
          STORE === "inline"
            ? yield* Layer.build(file)
            : yield* Layer.build(WriterThread.layer({ filename }).pipe(Layer.provide(file)))
        // The writer thread is started (and its connection opened) before the clock too, with an
        // empty batch: it starts with the first batch and then stays while batches come
        // (WriterThread.ts), so a sustained ingest does not pay its start.
        yield* Option.match(Context.getOption(built, WriterThread.BatchWriter), {
          onNone: () => Effect.void,
          onSome: (writer) => writer.write(WriterThread.encodeBatch([]))
        })
        const store = timed(built, flushMs)
        const t = performance.now()
        const cpu = mainThreadMs() / 1000
        let recorded = t
        let recordCpu = cpu
        // Closing the collector's scope does the final flush: inside the timed part.
        const collector = yield* Effect.scoped(
          Effect.gen(function* () {
            const collector = Context.get(yield* Layer.build(Collector.layer(config)), Collector)
            yield* recordLoop(collector, outcome, seq, batch)
            recorded = performance.now()
            recordCpu = mainThreadMs() / 1000
            return collector
          })
        ).pipe(Effect.provide(store))
        const end = performance.now()
        // Still open: the main file plus its -wal and -shm.
        return {
          seconds: (end - t) / 1000,
          recordSeconds: (recorded - t) / 1000,
          recordCpuSeconds: recordCpu - cpu,
          collector,
          dbBytes: dirBytes(dir)
        }
      })
    )
    const closedBytes = dirBytes(dir)
    const stats = yield* collector.stats
    const rows = yield* Effect.scoped(
      Layer.build(Store.layer({ filename })).pipe(
        // Only the keys: decoding all 40,000 rows (listResults) would dominate the peak RSS, after the timed part.
        Effect.flatMap((ctx) => Context.get(ctx, ResultStore).keysUpTo(Day.fromMillis(T0.getTime()))),
        Effect.map((rs) => rs.length)
      )
    )
    return {
      seconds,
      recordSeconds,
      recordCpuSeconds,
      flushMs,
      flushedRows: stats.flushed,
      dbBytes,
      closedBytes,
      rows
    } satisfies RunResult
  }).pipe(Effect.scoped)

/** The same loop on a store that discards every batch: what the collector itself costs. */
const collectorOnly = (outcome: (k: number) => SessionOutcome.SessionOutcome, seq: Int32Array) =>
  Effect.gen(function* () {
    // The batches still encoded, as for the writer thread (STORE=inline: handed over as rows).
    const discardRows = Layer.succeed(ResultStore, {
      addResults: () => Effect.void
    } as unknown as Context.Tag.Service<ResultStore>)
    const discard =
      STORE === "inline"
        ? discardRows
        : Layer.merge(discardRows, Layer.succeed(WriterThread.BatchWriter, { write: () => Effect.void }))
    const t = performance.now()
    yield* Effect.scoped(
      Effect.gen(function* () {
        const collector = Context.get(
          yield* Layer.build(Collector.layer(config).pipe(Layer.provide(discard))),
          Collector
        )
        for (let i = 0; i < seq.length; i++) yield* collector.record(outcome(seq[i]!))
      })
    )
    return (performance.now() - t) / 1000
  })

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits

const main = Effect.gen(function* () {
  console.log(
    `ingest: ${OUTCOMES.toLocaleString("en")} outcomes, ${DOMAINS.toLocaleString("en")} domains × ${MX_PER_DOMAIN} MX, ` +
      `${FAILURE_RATE * 100} % failures, order ${ORDER}, source ${SOURCE}, store ${STORE}, config ${JSON.stringify(config)}; ` +
      `node ${process.version}, ${cpus().length} cores, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`
  )
  const outcome = source(buildCaches())
  const seq = buildSequence()
  console.log(
    `RSS before the runs (node + modules${SOURCE === "fresh" ? " + the per-destination values" : " + 60,000 prebuilt outcomes"}): ${round(process.memoryUsage.rss() / 2 ** 20)} MB`
  )
  if (ALONE_RUNS > 0) {
    const alone: Array<number> = []
    for (let r = 0; r < ALONE_RUNS; r++) alone.push(yield* collectorOnly(outcome, seq))
    console.log(
      `collector alone (a store that discards the batches): ${Math.round(OUTCOMES / median(alone)).toLocaleString("en")} outcomes/s ` +
        `(median of ${ALONE_RUNS}), peak RSS so far ${round(process.resourceUsage().maxRSS / 1024)} MB`
    )
  }
  const report = (label: string, res: RunResult) =>
    console.log(
      `${label}: ${Math.round(OUTCOMES / res.seconds).toLocaleString("en")} outcomes/s (${round(res.seconds, 2)} s: ` +
        `recording ${round(res.recordSeconds, 2)} s, final flush ${round(res.seconds - res.recordSeconds, 2)} s; ` +
        `main thread CPU while recording ${round((res.recordCpuSeconds / OUTCOMES) * 1e6, 2)} µs an outcome), ` +
        `${res.flushMs.length} flushes (${res.flushedRows.toLocaleString("en")} rows written), flush median ` +
        `${round(median(res.flushMs))} ms p99 ${round(percentile(res.flushMs, 99))} ms max ${round(Math.max(...res.flushMs))} ms, ` +
        `store ${Math.round(res.flushedRows / (res.flushMs.reduce((a, b) => a + b, 0) / 1000)).toLocaleString("en")} rows/s while flushing; ` +
        `${res.rows.toLocaleString("en")} rows in the file, ${round(res.dbBytes / 2 ** 20)} MB with WAL, ${round(res.closedBytes / 2 ** 20)} MB closed; ` +
        `RSS ${round(process.memoryUsage.rss() / 2 ** 20)} MB, peak so far ${round(process.resourceUsage().maxRSS / 1024)} MB`
    )
  const results: Array<RunResult> = []
  for (let r = 1; r <= RUNS; r++) {
    const res = yield* run(outcome, seq)
    results.push(res)
    report(`run ${r}, record`, res)
  }
  // The peak of the `record` runs, as before `recordAll` was measured (more runs raise a process's peak).
  const peakRssMb = round(process.resourceUsage().maxRSS / 1024)
  const batched: Array<RunResult> = []
  if (BATCH > 0)
    for (let r = 1; r <= RUNS; r++) {
      const res = yield* run(outcome, seq, BATCH)
      batched.push(res)
      report(`run ${r}, recordAll of ${BATCH}`, res)
    }
  const outcomesPerSec = Math.round(OUTCOMES / median(results.map((r) => r.seconds)))
  const flushP99Ms = round(
    percentile(
      results.flatMap((r) => r.flushMs),
      99
    )
  )
  // The kernel's high-water mark of the whole process (a sampling timer would starve: the record loop
  // gives the event loop few turns), with the recordAll runs.
  const recordAllPeakRssMb = BATCH > 0 ? round(process.resourceUsage().maxRSS / 1024) : undefined
  const dbMb = round(median(results.map((r) => r.dbBytes)) / 2 ** 20)
  console.log(
    `median ${outcomesPerSec.toLocaleString("en")} outcomes/s; flush p99 ${flushP99Ms} ms; peak RSS ${peakRssMb} MB; database ${dbMb} MB; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`
  )
  // Steadier than wall time on a shared machine: what the main thread itself spent per outcome.
  const cpuUs = (rs: ReadonlyArray<RunResult>) => round((median(rs.map((r) => r.recordCpuSeconds)) / OUTCOMES) * 1e6, 2)
  const mainCpuUsPerOutcome = cpuUs(results)
  const recordAllMainCpuUsPerOutcome = BATCH > 0 ? cpuUs(batched) : undefined
  const recordAllPerSec = BATCH > 0 ? Math.round(OUTCOMES / median(batched.map((r) => r.seconds))) : undefined
  if (recordAllPerSec !== undefined)
    console.log(`recordAll in slices of ${BATCH}: median ${recordAllPerSec.toLocaleString("en")} outcomes/s`)
  console.log(
    JSON.stringify({
      bench: "ingest",
      outcomesPerSec,
      recordAllPerSec,
      mainCpuUsPerOutcome,
      recordAllMainCpuUsPerOutcome,
      peakRssMb,
      recordAllPeakRssMb,
      dbMb,
      flushP99Ms
    })
  )
})

Effect.runPromise(main).catch((e) => {
  console.error(e)
  process.exit(1)
})
