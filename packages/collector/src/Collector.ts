/**
 * The API an MTA calls for every SMTP/TLS session of an outgoing delivery. `record` checks the
 * outcome, turns it into rows (docs/design.md#rows-of-an-outcome) and merges them into an in-memory aggregate; a background
 * fiber writes the aggregate to the `ResultStore` in ONE `addResults` batch (one transaction) every
 * `flushInterval`, or as soon as it holds `flushRows` distinct keys (a bound on a batch's memory, set
 * well above a busy day's domains so that a steady stream aggregates: docs/design.md#batching-and-back-pressure). With a writer thread
 * (`WriterThread.layer`, which also serves `BatchWriter`) the batch goes to it as one encoded buffer
 * made row by row from the aggregate, never as an object graph of the whole batch.
 *
 * Guarantees:
 * - Nothing is dropped silently. A failed flush keeps its batch and retries it (with backoff) before
 *   anything newer, so the store sees rows in the order they were recorded (policy order, docs/design.md#policy-merge).
 * - Memory is bounded: besides the one batch being written, the buffer holds at most `maxPendingKeys`
 *   keys (and as many distinct failure details); when it is full, `record` waits until a flush has
 *   taken it (back-pressure).
 * - The interval also holds when a caller records in a tight loop that starves the event loop of
 *   timer turns: `record` itself checks the clock every 1,024 outcomes.
 * - `recordAll` records many outcomes with one Effect, all or nothing (docs/design.md#batching-and-back-pressure).
 * - One flush at a time. The store yields while it writes (SqlResultStore: about half of the CPU), so
 *   recording goes on into a fresh buffer meanwhile; under load a result can thus wait the interval plus
 *   the flush before it, and the next flush covers everything recorded during this one.
 * - Closing the layer's scope stops the fiber and flushes what is left (a clean stop loses nothing).
 * - `collect: false` (config `reports.collect`, or mox's NoOutgoingTLSReports, docs/design.md#collection-switches) records
 *   nothing; outcomes are still checked.
 */
import { Supervise } from "@tlsrpt/core"
import { type NewResultRow, ResultStore, type StoreError } from "@tlsrpt/store"
import {
  Context,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  MetricBoundaries,
  Option,
  Schedule,
  type Scope
} from "effect"
import { InvalidOutcome } from "./InvalidOutcome.js"
import { checkRow } from "./internal/OutcomeCheck.js"
import { ResultBuffer } from "./ResultBuffer.js"
import { BatchEncoder, BatchWriter } from "./WriterThread.js"
import { check, decodeOutcome, forEachRow, type RowView, type SessionOutcome } from "./SessionOutcome.js"

export interface CollectorConfig {
  /** Longest time a recorded result waits in memory. Default 1 second. */
  readonly flushInterval?: Duration.DurationInput | undefined
  /**
   * Flush as soon as the buffer holds this many distinct keys: the bound on one batch's memory (its JSON
   * is ~0.5 KB a key). Default 25,000 (docs/design.md#batching-and-back-pressure).
   */
  readonly flushRows?: number | undefined
  /** `record` waits while the buffer holds this many keys (or distinct failure details). Default 4 × flushRows. */
  readonly maxPendingKeys?: number | undefined
  /** `false`: record nothing (config `reports.collect`; mox's NoOutgoingTLSReports, docs/design.md#collection-switches). Default true. */
  readonly collect?: boolean | undefined
}

export interface CollectorStats {
  /** Outcomes accepted (including those that give no rows). */
  readonly recorded: number
  /** Outcomes or row batches refused as invalid. */
  readonly refused: number
  /** Accepted outcomes that stored nothing: IP-literal recipients (docs/design.md#rows-of-an-outcome), or `collect: false`. */
  readonly skipped: number
  /** Rows merged into the buffer (from outcomes and `recordRows`). */
  readonly rows: number
  /** Aggregated rows (distinct keys per batch) written to the store. */
  readonly flushed: number
  /** Successful `addResults` batches. */
  readonly flushes: number
  readonly flushFailures: number
  /** Keys in memory: the buffer plus a batch being written or waiting for a retry. */
  readonly pendingKeys: number
}

export const metrics = {
  recorded: Metric.counter("tlsrpt_outcomes_recorded_total", {
    description: "Session outcomes accepted by the collector",
    incremental: true
  }),
  refused: Metric.counter("tlsrpt_outcomes_refused_total", {
    description: "Session outcomes (or row batches) refused as invalid",
    incremental: true
  }),
  flushedRows: Metric.counter("tlsrpt_collector_flushed_rows_total", {
    description: "Aggregated result rows written to the store",
    incremental: true
  }),
  flushFailures: Metric.counter("tlsrpt_collector_flush_failures_total", {
    description: "Failed flushes (the batch is kept and retried)",
    incremental: true
  }),
  flushSeconds: Metric.histogram(
    "tlsrpt_collector_flush_seconds",
    MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 }),
    "Duration of one flush (one addResults transaction)"
  )
}

type Service = Context.Tag.Service<Collector>

/** A drained batch: its row count and its write (run again to retry). */
interface Batch {
  readonly rows: number
  readonly write: Effect.Effect<void, StoreError>
}

export class Collector extends Context.Tag("@tlsrpt/collector/Collector")<
  Collector,
  {
    /**
     * Records one session. Cheap (no I/O): waits only when the buffer is full. Not traced with a span
     * per call, it runs for every session.
     */
    readonly record: (outcome: SessionOutcome) => Effect.Effect<void, InvalidOutcome>
    /**
     * Records many sessions at once (an MTA that reports in batches): all or nothing, like
     * `recordRows`. The first invalid outcome refuses the whole batch (its field prefixed with the
     * outcome's index, `[3].policies[0].result`); waits once when the buffer is full, then merges
     * them all. One Effect for the batch instead of one a session. Not traced with a span per call,
     * as `record` (a caller may hand over a few outcomes at a time).
     */
    readonly recordAll: (outcomes: ReadonlyArray<SessionOutcome>) => Effect.Effect<void, InvalidOutcome>
    /** Decodes untrusted input (a parsed JSON line) with the `SessionOutcome` Schema, then records it. */
    readonly recordUnknown: (input: unknown) => Effect.Effect<void, InvalidOutcome>
    /** Records rows built elsewhere (mox-style accounting); all or nothing. */
    readonly recordRows: (rows: ReadonlyArray<NewResultRow>) => Effect.Effect<void, InvalidOutcome>
    /**
     * Synchronous fast path for rows a source has already checked (the libtlsrpt datagram source):
     * merges them and returns true, or takes nothing and returns false while the buffer is full (or
     * the collector is closed). After false, wait for `space` and offer again.
     */
    readonly offerRows: (rows: ReadonlyArray<NewResultRow>) => boolean
    /** Succeeds once the buffer has room (at once when it has); a defect once the collector is closed. */
    readonly space: Effect.Effect<void>
    /** Writes everything recorded so far to the store now. On failure the data stays pending. */
    readonly flush: Effect.Effect<void, StoreError>
    readonly stats: Effect.Effect<CollectorStats>
  }
>() {
  /** Aggregating collector on the `ResultStore`, with its flush fiber in the layer's scope. */
  static readonly layer = (config?: CollectorConfig): Layer.Layer<Collector, never, ResultStore> =>
    Layer.scoped(Collector, make(config))

  /** Records nothing (still checks input). */
  static readonly layerNoop: Layer.Layer<Collector> = Layer.sync(Collector, () => makeNoop())
}

interface Counters {
  recorded: number
  refused: number
  skipped: number
  rows: number
  flushed: number
  flushes: number
  flushFailures: number
}

const newCounters = (): Counters => ({
  recorded: 0,
  refused: 0,
  skipped: 0,
  rows: 0,
  flushed: 0,
  flushes: 0,
  flushFailures: 0
})

const refuse = (counters: Counters, e: InvalidOutcome): Effect.Effect<never, InvalidOutcome> => {
  counters.refused++
  metrics.refused.unsafeUpdate(1, [])
  return Effect.fail(e)
}

const accepted = (counters: Counters): void => {
  counters.recorded++
  metrics.recorded.unsafeUpdate(1, [])
}

/** `check` of each outcome; the first refusal with the outcome's index in its field (`recordAll`). */
const checkAll = (outcomes: ReadonlyArray<SessionOutcome>): InvalidOutcome | undefined => {
  if (!Array.isArray(outcomes)) return new InvalidOutcome({ reason: "expected an array", field: "" })
  for (let i = 0; i < outcomes.length; i++) {
    const e = check(outcomes[i])
    if (e !== undefined)
      return new InvalidOutcome({ reason: e.reason, field: e.field === "" ? `[${i}]` : `[${i}].${e.field}` })
  }
  return undefined
}

const makeNoop = (): Service => {
  const counters = newCounters()
  const record = (o: SessionOutcome) =>
    Effect.suspend(() => {
      const e = check(o)
      if (e !== undefined) return refuse(counters, e)
      accepted(counters)
      counters.skipped++
      return Effect.void
    })
  return {
    record,
    recordAll: (outcomes) =>
      Effect.suspend(() => {
        const e = checkAll(outcomes)
        if (e !== undefined) return refuse(counters, e)
        for (let i = 0; i < outcomes.length; i++) accepted(counters)
        counters.skipped += outcomes.length
        return Effect.void
      }),
    recordUnknown: (input) =>
      Effect.suspend(() => Either.match(decodeOutcome(input), { onLeft: (e) => refuse(counters, e), onRight: record })),
    recordRows: (rows) =>
      Effect.suspend(() => {
        for (let i = 0; i < rows.length; i++) {
          const e = checkRow(rows[i]!, i)
          if (e !== undefined) return refuse(counters, e)
        }
        return Effect.void
      }),
    offerRows: () => true,
    space: Effect.void,
    flush: Effect.void,
    stats: Effect.sync(() => ({ ...counters, pendingKeys: 0 }))
  }
}

/** Real time without a row after which the collector lets go of its kept keys and buffer. */
const REST_MS = 30_000

const make = (config: CollectorConfig = {}): Effect.Effect<Service, never, ResultStore | Scope.Scope> =>
  Effect.gen(function* () {
    if (config.collect === false) return makeNoop()
    const store = yield* ResultStore
    const interval = Duration.decode(config.flushInterval ?? Duration.seconds(1))
    // docs/design.md#batching-and-back-pressure: at 10,000 a stream over 10,000 domains flushed every
    // 10,000 sessions and wrote one row per session; above a day's domains it flushes on the interval
    // and each row sums every session of the interval (the datagram bench: writer thread CPU -40 %).
    const flushRows = Math.max(1, Math.floor(config.flushRows ?? 25_000))
    const maxPending = Math.max(flushRows, Math.floor(config.maxPendingKeys ?? flushRows * 4))
    const intervalMillis = Duration.toMillis(interval)
    const clock = yield* Effect.clock

    const counters = newCounters()
    // Kept across flushes: it reuses its keys (ResultBuffer), at most maxPending of them.
    const buffer = new ResultBuffer(maxPending)
    // With a writer thread, batches go to it encoded (BatchWriter): never an object graph here.
    const writer = Option.getOrUndefined(yield* Effect.serviceOption(BatchWriter))
    const encoder = new BatchEncoder()
    // The batch being written, or that failed and waits for its retry. Only the flush fiber or a
    // `flush` caller (serialised by `lock`) touches it.
    let inflight: Batch | undefined
    let closed = false
    const lock = yield* Effect.makeSemaphore(1)
    // Opened to wake the flush fiber early (flushRows reached, or back-pressure).
    const wake = Effect.unsafeMakeLatch(false)
    let wakeRequested = false
    // Closed while the buffer is full; opened when a flush takes the buffer.
    const space = Effect.unsafeMakeLatch(true)

    // Open while rows wait: an idle collector sleeps on it instead of waking every interval for nothing
    // (a worker at rest for months; a TestClock month would otherwise be 2.6M empty wake-ups).
    const pending = Effect.unsafeMakeLatch(false)
    let pendingOpen = false

    let admitted = 0
    // When the buffer was last taken by a flush.
    let takenAt = clock.unsafeCurrentTimeMillis()

    const requestFlush = (): void => {
      if (!wakeRequested) {
        wakeRequested = true
        wake.unsafeOpen()
      }
    }

    const isFull = (): boolean => buffer.size >= maxPending || buffer.details >= maxPending

    /** Waits until a flush has taken the full buffer, then runs `retry`. */
    const whenSpace = <E>(retry: () => Effect.Effect<void, E>): Effect.Effect<void, E> => {
      requestFlush()
      space.unsafeClose()
      return Effect.zipRight(space.await, Effect.suspend(retry))
    }

    const added = (rows: number): void => {
      counters.rows += rows
      if (!pendingOpen) {
        pendingOpen = true
        pending.unsafeOpen()
      }
      if (buffer.size >= flushRows) requestFlush()
      // The flush fiber's timer needs event-loop turns, which a caller recording in a tight loop does
      // not give; so every 1,024 admissions the interval is also checked here.
      else if ((++admitted & 1023) === 0 && clock.unsafeCurrentTimeMillis() - takenAt >= intervalMillis) requestFlush()
    }

    const addRow = (v: RowView): void => buffer.addView(v)

    /** Merges a checked outcome into the buffer, waiting while it is full. */
    const admit = (o: SessionOutcome): Effect.Effect<void> => {
      if (closed) return Effect.dieMessage("Collector used after its scope was closed")
      if (isFull()) return whenSpace(() => admit(o))
      added(forEachRow(o, addRow))
      // Counted once in the buffer: a recorder interrupted while waiting has recorded nothing.
      accepted(counters)
      return Effect.void
    }

    /** Merges checked outcomes into the buffer, all of them, waiting once while it is full. */
    const admitAll = (outcomes: ReadonlyArray<SessionOutcome>): Effect.Effect<void> => {
      if (closed) return Effect.dieMessage("Collector used after its scope was closed")
      if (isFull()) return whenSpace(() => admitAll(outcomes))
      let rows = 0
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i]!
        // docs/design.md#rows-of-an-outcome: deliveries to IP literals record nothing.
        if (typeof o.recipientDomain === "string") counters.skipped++
        else rows += forEachRow(o, addRow)
        accepted(counters)
      }
      added(rows)
      return Effect.void
    }

    const admitRows = (rows: ReadonlyArray<NewResultRow>): Effect.Effect<void> => {
      if (closed) return Effect.dieMessage("Collector used after its scope was closed")
      if (isFull()) return whenSpace(() => admitRows(rows))
      for (let i = 0; i < rows.length; i++) buffer.add(rows[i]!)
      added(rows.length)
      return Effect.void
    }

    const record = (o: SessionOutcome): Effect.Effect<void, InvalidOutcome> =>
      Effect.suspend(() => {
        const e = check(o)
        if (e !== undefined) return refuse(counters, e)
        // docs/design.md#rows-of-an-outcome: deliveries to IP literals record nothing.
        if (typeof o.recipientDomain === "string") {
          accepted(counters)
          counters.skipped++
          return Effect.void
        }
        return admit(o)
      })

    const writeInflight: Effect.Effect<void, StoreError> = Effect.suspend(() => {
      const batch = inflight
      if (batch === undefined) return Effect.void
      return batch.write.pipe(
        Effect.timed,
        Effect.flatMap(([took]) => Metric.update(metrics.flushSeconds, Duration.toSeconds(took))),
        // Cleared only on success. Uninterruptible as a whole: an interruption delivered as the write
        // returns would hide its success, and the final flush would write the batch again (with the
        // WriterThread the write cannot be stopped once handed over, so it always returns).
        Effect.onExit((exit) =>
          Exit.isSuccess(exit)
            ? Effect.sync(() => {
                if (inflight === batch) inflight = undefined
                counters.flushed += batch.rows
                counters.flushes++
                metrics.flushedRows.unsafeUpdate(batch.rows, [])
              })
            : Effect.void
        ),
        Effect.uninterruptible
      )
    })

    const takeBuffer = Effect.sync(() => {
      wakeRequested = false
      wake.unsafeClose()
      takenAt = clock.unsafeCurrentTimeMillis()
      if (buffer.size === 0) return
      if (writer === undefined) {
        const rows = buffer.drain()
        inflight = { rows: rows.length, write: store.addResults(rows) }
      } else {
        // The batch is a view of the encoder's buffer until its next `add`: only here, once the
        // batch before succeeded (flushNow), so a batch kept for a retry keeps its bytes.
        const rows = buffer.drainJson((json) => encoder.add(json))
        inflight = { rows, write: writer.write(encoder.finish()) }
      }
      space.unsafeOpen()
    })

    // An older failed batch goes first, then the buffer.
    const flushNow: Effect.Effect<void, StoreError> = lock.withPermits(1)(
      writeInflight.pipe(Effect.zipRight(takeBuffer), Effect.zipRight(writeInflight))
    )

    const backoff = (failures: number): Duration.Duration =>
      Duration.min(Duration.times(interval, 2 ** Math.min(failures, 10)), Duration.minutes(1))

    // At rest (no row for REST_MS of real time, as the writer thread's and compose pool's idle
    // periods) the collector drops what it keeps for a steady stream: the retained keys and the
    // encoder's grown buffer (docs/design.md#thread-memory). A stream that starts again rebuilds them.
    const rest = () => {
      if (buffer.size === 0 && inflight === undefined) {
        buffer.forget()
        encoder.shrink()
      }
    }
    const restTimer = Effect.acquireRelease(
      Effect.sync(() => setTimeout(rest, REST_MS).unref()),
      (t) => Effect.sync(() => clearTimeout(t))
    )

    const flusher = Effect.gen(function* () {
      let failures = 0
      while (true) {
        if (failures === 0) {
          if (buffer.size === 0 && inflight === undefined) {
            pendingOpen = false
            pending.unsafeClose()
            yield* Effect.scoped(Effect.zipRight(restTimer, pending.await))
          }
          yield* Effect.race(wake.await, Effect.sleep(interval))
        } else yield* Effect.sleep(backoff(failures))
        // A store failure is expected and handled here; a defect ends the fiber for the supervisor.
        const error = yield* flushNow.pipe(Effect.as(undefined), Effect.catchAll(Effect.succeed))
        if (error === undefined) {
          failures = 0
          continue
        }
        failures++
        counters.flushFailures++
        metrics.flushFailures.unsafeUpdate(1, [])
        yield* Effect.logWarning("flush failed; the batch is kept and retried", error).pipe(
          Effect.annotateLogs({ pendingKeys: (inflight?.rows ?? 0) + buffer.size, failures })
        )
      }
    }).pipe(Effect.annotateLogs("service", "Collector"))

    // A failed flush is handled above (batch kept, retried with backoff); a defect ends the fiber, and
    // the one policy of docs/architecture.md#background-loops logs it and restarts it (the batch is kept).
    const fiber = yield* Effect.forkScoped(Supervise.supervise("collector-flush")(flusher))

    // Added after the fork, so it runs first: stop the fiber, refuse further input (a defect, not a
    // silent loss), then write what is left.
    yield* Effect.addFinalizer(() =>
      Fiber.interrupt(fiber).pipe(
        Effect.zipRight(
          Effect.sync(() => {
            closed = true
          })
        ),
        Effect.zipRight(flushNow),
        Effect.retry(Schedule.intersect(Schedule.exponential("100 millis"), Schedule.recurs(4))),
        Effect.catchAllCause((cause) =>
          Effect.logError("final flush failed; results lost", cause).pipe(
            Effect.annotateLogs({ lostKeys: (inflight?.rows ?? 0) + buffer.size })
          )
        ),
        // Wakes recorders still waiting for space: they see `closed` and stop. Every write is over
        // (the final flush held the lock), so the encoder's buffer can go to the next collector.
        Effect.ensuring(
          Effect.sync(() => {
            space.unsafeOpen()
            encoder.release()
          })
        )
      )
    )

    const service: Service = {
      record,
      recordAll: (outcomes) =>
        Effect.suspend(() => {
          const e = checkAll(outcomes)
          return e === undefined ? admitAll(outcomes) : refuse(counters, e)
        }),
      recordUnknown: Effect.fn("Collector.recordUnknown")((input: unknown) =>
        Either.match(decodeOutcome(input), { onLeft: (e) => refuse(counters, e), onRight: record })
      ),
      recordRows: Effect.fn("Collector.recordRows")((rows: ReadonlyArray<NewResultRow>) => {
        for (let i = 0; i < rows.length; i++) {
          const e = checkRow(rows[i]!, i)
          if (e !== undefined) return refuse(counters, e)
        }
        return admitRows(rows)
      }),
      offerRows: (rows) => {
        if (closed) return false
        if (isFull()) {
          requestFlush()
          space.unsafeClose()
          return false
        }
        for (let i = 0; i < rows.length; i++) buffer.add(rows[i]!)
        added(rows.length)
        return true
      },
      space: Effect.suspend(() => {
        if (closed) return Effect.dieMessage("Collector used after its scope was closed")
        if (!isFull()) return Effect.void
        requestFlush()
        space.unsafeClose()
        return space.await
      }),
      flush: flushNow.pipe(Effect.withSpan("Collector.flush")),
      stats: Effect.sync(() => ({ ...counters, pendingKeys: buffer.size + (inflight?.rows ?? 0) }))
    }
    return service
  })
