/**
 * The shared ring between the datagram receiver thread and the main thread, both sides driven from
 * one thread here: every datagram comes out whole and in order, across wraps, and the writer refuses
 * room only while the reader has not freed it (then nothing is lost: the thread waits, the kernel keeps
 * the datagram). Repeated bytes cross as their number only; the reader, keeping what each number
 * stood for until told to forget, gets the same sequence.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import {
  CTRL_WORDS,
  DatagramInterner,
  MAX_DATAGRAM,
  NOT_INTERNED,
  type RingConsumer,
  RingReader,
  RingWriter,
  ringSize
} from "../src/DatagramRing.js"

const make = (interner?: DatagramInterner) => {
  const init = { ctrl: new SharedArrayBuffer(CTRL_WORDS * 4), ring: new SharedArrayBuffer(ringSize(0)) }
  return { writer: new RingWriter(init, interner), reader: new RingReader(init), size: init.ring.byteLength }
}

/**
 * The main thread's side as DatagramSource uses it: each number's bytes kept (copied) at first
 * sight, a repeat resolved through them. Also counts what crossed whole and as a number.
 */
const collect = (got: Array<Uint8Array>) => {
  let known = new Map<number, Uint8Array>()
  const seen = { whole: 0, repeats: 0, forgets: 0, unknown: 0 }
  const consumer: RingConsumer = {
    datagram: (id, bytes) => {
      const copy = bytes.slice()
      if (id !== NOT_INTERNED) known.set(id, copy)
      got.push(copy)
      seen.whole++
      return true
    },
    repeat: (id) => {
      const bytes = known.get(id)
      if (bytes === undefined) seen.unknown++
      else got.push(bytes)
      seen.repeats++
      return true
    },
    forget: () => {
      known = new Map()
      seen.forgets++
    }
  }
  return { consumer, seen }
}

/** A datagram of `n` bytes that says which one it is. */
const datagram = (i: number, n: number) => {
  const b = new Uint8Array(n)
  for (let k = 0; k < n; k++) b[k] = (i * 31 + k) & 0xff
  return b
}

// Mostly libtlsrpt-sized, sometimes large up to the largest datagram read whole.
const size = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 2000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 2000, max: MAX_DATAGRAM }) }
)
// A step: write a datagram (one of a few contents, so that some repeat), or let the reader take up to k.
const step = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(size, fc.nat({ max: 5 })).map(([n, which]) => ({ write: n, which })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 50 }).map((k) => ({ take: k })) }
)

describe("DatagramRing", () => {
  it.prop(
    "hands every datagram over whole and in order, repeats as their number; refuses room only while the ring is full",
    {
      steps: fc.array(step, { minLength: 1, maxLength: 400 }),
      maxEntries: fc.integer({ min: 1, max: 8 }),
      maxDatagram: fc.constantFrom(0, 100, 8192, MAX_DATAGRAM)
    },
    ({ steps, maxEntries, maxDatagram }) => {
      const { writer, reader } = make(new DatagramInterner(maxEntries, 16 * 1024 * 1024, maxDatagram))
      const sent: Array<Uint8Array> = []
      const got: Array<Uint8Array> = []
      const { consumer, seen } = collect(got)
      const take = (k: number) => reader.take(k, consumer)
      for (const s of steps) {
        if ("take" in s) {
          take(s.take)
          continue
        }
        let off = writer.reserve()
        if (off === undefined) {
          // Full: published datagrams are waiting; once the reader takes them all there is room.
          writer.publish()
          assert.isTrue(reader.pending)
          take(Number.MAX_SAFE_INTEGER)
          off = writer.reserve()
          assert.isDefined(off)
        }
        const d = datagram(s.which, s.write)
        writer.buffer.set(d, off!)
        writer.commit(d.length)
        sent.push(d)
      }
      writer.publish()
      take(Number.MAX_SAFE_INTEGER)
      assert.isFalse(reader.pending)
      assert.strictEqual(seen.unknown, 0)
      assert.strictEqual(got.length, sent.length)
      for (let k = 0; k < sent.length; k++) assert.deepStrictEqual(got[k], sent[k])
    }
  )

  it("sends the same bytes whole once, then as a number; forgets when the interner is full", () => {
    const { writer, reader } = make(new DatagramInterner(2))
    const write = (i: number, n: number) => {
      writer.buffer.set(datagram(i, n), writer.reserve()!)
      writer.commit(n)
    }
    // a a b a | c (the interner holds two: cleared, the reader told) c a
    for (const [i, n] of [
      [1, 10],
      [1, 10],
      [2, 10],
      [1, 10],
      [3, 10],
      [3, 10],
      [1, 10]
    ] as const)
      write(i, n)
    // Same first bytes, another length: another datagram.
    write(1, 11)
    writer.publish()
    const got: Array<Uint8Array> = []
    const { consumer, seen } = collect(got)
    assert.strictEqual(reader.take(100, consumer), 8)
    assert.deepStrictEqual(seen, { whole: 5, repeats: 3, forgets: 2, unknown: 0 })
    assert.deepStrictEqual(
      got.map((d) => d.length),
      [10, 10, 10, 10, 10, 10, 10, 11]
    )
  })

  it("a reader that refuses a datagram gets it again", () => {
    const { writer, reader } = make()
    for (const n of [10, 20, 10]) {
      writer.buffer.set(datagram(n, n), writer.reserve()!)
      writer.commit(n)
    }
    writer.publish()
    const refuse: RingConsumer = { datagram: () => false, repeat: () => false, forget: () => {} }
    assert.strictEqual(reader.take(10, refuse), 0)
    const got: Array<Uint8Array> = []
    const { consumer } = collect(got)
    // The first two, then the repeat refused: it comes again.
    let calls = 0
    assert.strictEqual(reader.take(10, { ...consumer, repeat: () => calls++ > 0 }), 2)
    assert.strictEqual(reader.take(10, { ...consumer, repeat: () => calls++ > 0 }), 1)
    assert.deepStrictEqual(
      got.map((d) => d.length),
      [10, 20]
    )
  })
})
