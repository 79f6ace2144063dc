/**
 * The collector's writer thread on a real SQLite file: the same rows as the in-process store, the
 * flush's (Test)Clock time, typed errors, and a crashed thread restarted with its batch.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { type Day, ThreadEntry } from "@tlsrpt/core"
import { type NewResultRow, type ResultRow, ResultStore, Store, StoreError } from "@tlsrpt/store"
import { Context, Effect, Either, FastCheck as fc, Layer, TestClock } from "effect"
import { Collector } from "../src/Collector.js"
import { ResultBuffer } from "../src/ResultBuffer.js"
import { decodeOutcome, toRows } from "../src/SessionOutcome.js"
import type * as SessionOutcome from "../src/SessionOutcome.js"
import * as WriterThread from "../src/WriterThread.js"
import { jsonOutcome } from "./Arbitraries.js"
import { d, outcome, T0 } from "./Outcomes.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tlsrpt-writer-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** 300 outcomes over 40 domains, 1 in 7 failed with a detail; two days. */
const outcomes: ReadonlyArray<SessionOutcome.SessionOutcome> = Array.from({ length: 300 }, (_, i) => {
  const failed = i % 7 === 0
  const base = outcome(`r${i % 40}.example`, {
    timestamp: i % 2 === 0 ? T0 : new Date(T0.getTime() + 86_400_000),
    mxHost: d(`mx${i % 3}.r${i % 40}.example`)
  })
  return failed
    ? {
        ...base,
        policies: [
          {
            type: "no-policy-found",
            scope: "recipient-domain",
            result: "failure",
            failureDetails: [{ resultType: "certificate-expired" }]
          },
          { type: "no-policy-found", scope: "mx-host", result: "failure" }
        ]
      }
    : base
})

/** Records `outcomes` in two halves (two flushes, the second merging into stored rows), then closes. */
const collect = (filename: string, threaded: WriterThread.Options | undefined) =>
  Effect.scoped(
    Effect.gen(function* () {
      const store = Store.layer({ filename })
      const layer = Collector.layer({ flushInterval: "1 hour" })
      const collector =
        threaded === undefined
          ? layer.pipe(Layer.provide(store))
          : layer.pipe(Layer.provide(WriterThread.layer(threaded).pipe(Layer.provide(store))))
      const c = Context.get(yield* Layer.build(collector), Collector)
      for (const o of outcomes.slice(0, 150)) yield* c.record(o)
      yield* c.flush
      for (const o of outcomes.slice(150)) yield* c.record(o)
      yield* c.flush
      return yield* c.stats
    })
  )

const readAll = (filename: string) =>
  Effect.scoped(
    Layer.build(Store.layer({ filename })).pipe(Effect.flatMap((ctx) => Context.get(ctx, ResultStore).listResults()))
  )

const comparable = (rows: ReadonlyArray<ResultRow>) => rows.map(({ created: _c, updated: _u, ...rest }) => rest)

const newRow: NewResultRow = {
  policyDomain: d("a.example"),
  day: "2024-01-09" as Day.Day,
  recipientDomain: d("a.example"),
  isHost: false,
  sendReport: true,
  results: []
}

const crashing = (marker: string) => (init: WriterThread.ThreadInit) =>
  ThreadEntry.spawn(import.meta.url, "CrashingWriterThread", { workerData: { ...init, marker } })

describe("WriterThread", () => {
  it.scopedLive("stores exactly the rows (ids, order, merges) that the in-process store stores", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      yield* collect(join(dir, "inline.db"), undefined)
      const stats = yield* collect(join(dir, "threaded.db"), { filename: join(dir, "threaded.db") })
      assert.strictEqual(stats.flushes, 2)
      assert.strictEqual(stats.pendingKeys, 0)
      const inline = yield* readAll(join(dir, "inline.db"))
      const threaded = yield* readAll(join(dir, "threaded.db"))
      assert.strictEqual(threaded.length, 160)
      assert.deepStrictEqual(comparable(threaded), comparable(inline))
    })
  )

  it.scopedLive("closing the collector while its fiber writes a batch writes every batch exactly once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "close.db")
      yield* collect(join(dir, "inline.db"), undefined)
      // flushRows 8: the fiber is writing when the scope closes right after the last record.
      yield* Effect.scoped(
        Effect.gen(function* () {
          const layer = Collector.layer({ flushInterval: "1 hour", flushRows: 8 }).pipe(
            Layer.provide(WriterThread.layer({ filename }).pipe(Layer.provide(Store.layer({ filename }))))
          )
          const c = Context.get(yield* Layer.build(layer), Collector)
          for (const o of outcomes) yield* c.record(o)
        })
      )
      const totals = (rows: ReadonlyArray<ResultRow>) =>
        rows
          .map(
            (r) => `${r.policyDomain}|${r.day}|${r.recipientDomain}|${JSON.stringify(r.results.map((p) => p.summary))}`
          )
          .sort()
      assert.deepStrictEqual(totals(yield* readAll(filename)), totals(yield* readAll(join(dir, "inline.db"))))
    })
  )

  it.scoped("writes the rows with the flush's Clock time (a TestClock here), not the thread's", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "clock.db")
      const at = Date.UTC(2031, 4, 6, 7, 8, 9)
      yield* TestClock.setTime(at)
      yield* collect(filename, { filename })
      const rows = yield* readAll(filename)
      assert.isAbove(rows.length, 0)
      for (const r of rows) {
        assert.strictEqual(r.created.getTime(), at)
        assert.strictEqual(r.updated.getTime(), at)
      }
    })
  )

  it.scopedLive("a thread that cannot open the file fails the write with a StoreError naming it", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      // A directory is not a database file.
      const thread = yield* WriterThread.make({ filename: dir })
      const error = yield* thread.write([newRow]).pipe(Effect.flip)
      assert.instanceOf(error, StoreError)
      assert.strictEqual(error.operation, `open ${dir}`)
      assert.include(error.message, "unable to open database file")
    })
  )

  it.scopedLive("a thread that dies on a batch is started again and the batch written once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "crash.db")
      const marker = join(dir, "crashed")
      yield* collect(join(dir, "inline.db"), undefined)
      const stats = yield* collect(filename, { filename, spawn: crashing(marker) })
      assert.isTrue(existsSync(marker))
      assert.strictEqual(stats.flushFailures, 0)
      assert.strictEqual(stats.flushes, 2)
      // Written twice, the counts would be doubled.
      assert.deepStrictEqual(comparable(yield* readAll(filename)), comparable(yield* readAll(join(dir, "inline.db"))))
    })
  )

  it.scopedLive("a batch crosses in shared memory, not copied: the thread writes the encoder's own bytes", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "shared.db")
      const thread = yield* WriterThread.make({ filename })
      const encoder = new WriterThread.BatchEncoder()
      encoder.add(JSON.stringify(newRow))
      const batch = encoder.finish()
      assert.instanceOf(batch.buffer, SharedArrayBuffer)
      // A view of the encoder's buffer, which the next batch reuses: no copy per flush.
      encoder.add(JSON.stringify(newRow))
      assert.strictEqual(encoder.finish().buffer, batch.buffer)
      yield* thread.writeBatch(batch)
      assert.lengthOf(yield* readAll(filename), 1)
    })
  )

  it.scopedLive("a batch of several pieces is one transaction: one failing in its last piece stores nothing", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filename = join(dir, "pieces.db")
      const thread = yield* WriterThread.make({ filename })
      const encoder = new WriterThread.BatchEncoder()
      const rows = WriterThread.PIECE_ROWS * 2 + 1
      for (let i = 0; i < rows - 1; i++) encoder.add(JSON.stringify({ ...newRow, policyDomain: d(`p${i}.example`) }))
      // The last piece cannot be decoded: the first two were written into the transaction already.
      encoder.add("{")
      const error = yield* thread.writeBatch(encoder.finish()).pipe(Effect.flip)
      assert.instanceOf(error, StoreError)
      assert.lengthOf(yield* readAll(filename), 0)
      // The same rows without the bad one: written whole.
      for (let i = 0; i < rows - 1; i++) encoder.add(JSON.stringify({ ...newRow, policyDomain: d(`p${i}.example`) }))
      yield* thread.writeBatch(encoder.finish())
      assert.lengthOf(yield* readAll(filename), rows - 1)
    })
  )

  it.scopedLive(
    "a thread that always dies fails the write with a StoreError (the Collector keeps the batch and retries)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const filename = join(dir, "poison.db")
        const thread = yield* WriterThread.make({ filename, spawn: crashing("always") })
        const error = yield* thread.write([newRow]).pipe(Effect.flip)
        assert.instanceOf(error, StoreError)
        assert.include(error.message, "writer thread exited with code 3")
        assert.strictEqual(thread.started(), 4)
      })
  )
})

describe("BatchEncoder", () => {
  it.prop(
    "encodes rows added one by one exactly as JSON.stringify of the whole batch (UTF-8, any size)",
    { outcomes: fc.array(jsonOutcome, { maxLength: 40 }), times: fc.integer({ min: 1, max: 300 }) },
    ({ outcomes, times }) => {
      const once = outcomes.flatMap((j) => toRows(Either.getOrThrow(decodeOutcome(j))))
      // Repeated so that batches pass the encoder's first 64 KiB and it grows.
      const rows = Array.from({ length: times }, () => once).flat()
      const batch = WriterThread.encodeBatch(rows)
      const text = new TextDecoder().decode(batch)
      // One JSON array; the newlines between pieces are whitespace.
      assert.strictEqual(text.replaceAll("\n", ""), JSON.stringify(rows))
      assert.deepStrictEqual(JSON.parse(text), JSON.parse(JSON.stringify(rows)))
      // The thread's pieces: the rows in order, at most PIECE_ROWS each, all full but the last.
      const pieces = Array.from(WriterThread.pieces(batch), (p) => JSON.parse(p) as Array<unknown>)
      assert.deepStrictEqual(pieces.flat(), JSON.parse(JSON.stringify(rows)))
      assert.strictEqual(pieces.length, Math.ceil(rows.length / WriterThread.PIECE_ROWS))
      for (const p of pieces.slice(0, -1)) assert.strictEqual(p.length, WriterThread.PIECE_ROWS)
    },
    { fastCheck: { numRuns: 40 } }
  )

  it("a released encoder's buffer goes to the next encoder only: two live encoders never share one", () => {
    const a = new WriterThread.BatchEncoder()
    a.add(JSON.stringify(newRow))
    const first = a.finish()
    a.release()
    const b = new WriterThread.BatchEncoder()
    const c = new WriterThread.BatchEncoder()
    b.add(JSON.stringify(newRow))
    c.add(JSON.stringify({ ...newRow, policyDomain: d("c.example") }))
    const batchB = b.finish()
    const batchC = c.finish()
    assert.strictEqual(batchB.buffer, first.buffer, "b took the released buffer")
    assert.notStrictEqual(batchC.buffer, batchB.buffer)
    assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(batchB)), JSON.parse(JSON.stringify([newRow])))
    assert.strictEqual(JSON.parse(new TextDecoder().decode(batchC))[0].policyDomain.ascii, "c.example")
  })

  it("a shrunk encoder gives up its grown buffer and encodes the next batch as before", () => {
    const e = new WriterThread.BatchEncoder()
    for (let i = 0; i < 400; i++) e.add(JSON.stringify(newRow))
    const grown = e.finish()
    assert.isAbove(grown.buffer.byteLength, 1 << 16)
    e.shrink()
    e.add(JSON.stringify(newRow))
    const next = e.finish()
    assert.notStrictEqual(next.buffer, grown.buffer)
    assert.strictEqual(next.buffer.byteLength, 1 << 16)
    assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(next)), JSON.parse(JSON.stringify([newRow])))
  })

  it("a batch without newlines (JSON.stringify of the rows) is one piece", () => {
    const rows = [newRow, { ...newRow, policyDomain: d("b.example") }]
    const pieces = Array.from(WriterThread.pieces(new TextEncoder().encode(JSON.stringify(rows))))
    assert.deepStrictEqual(pieces, [JSON.stringify(rows)])
    assert.deepStrictEqual(Array.from(WriterThread.pieces(new TextEncoder().encode("[]"))), [])
  })

  it.effect("the Collector hands its batches to a BatchWriter, encoded, when there is one", () =>
    Effect.gen(function* () {
      const batches: Array<ReadonlyArray<unknown>> = []
      const refuse = Layer.succeed(ResultStore, {
        addResults: () => Effect.dieMessage("rows must go to the BatchWriter")
      } as unknown as Context.Tag.Service<ResultStore>)
      const writer = Layer.succeed(WriterThread.BatchWriter, {
        write: (batch) =>
          Effect.sync(() => {
            batches.push(JSON.parse(new TextDecoder().decode(batch)))
          })
      })
      const expected = yield* Effect.scoped(
        Effect.gen(function* () {
          const c = Context.get(
            yield* Layer.build(
              Collector.layer({ flushInterval: "1 hour" }).pipe(Layer.provide(Layer.merge(refuse, writer)))
            ),
            Collector
          )
          const rows = outcomes.slice(0, 40).flatMap((o) => toRows(o))
          for (const o of outcomes.slice(0, 40)) yield* c.record(o)
          yield* c.flush
          return rows
        })
      )
      assert.strictEqual(batches.length, 1)
      const reference = new ResultBuffer()
      for (const row of expected) reference.add(row)
      assert.deepStrictEqual(batches[0], JSON.parse(JSON.stringify(reference.drain())))
    })
  )
})
