/**
 * The shared ring between the datagram receiver thread and the main thread, both sides driven from
 * one thread here: every datagram comes out whole and in order, across wraps, and the writer refuses
 * room only while the reader has not freed it (then nothing is lost: the thread waits, the kernel keeps
 * the datagram).
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { CTRL_WORDS, MAX_DATAGRAM, RingReader, RingWriter, ringSize } from "../src/DatagramRing.js"

const make = () => {
  const init = { ctrl: new SharedArrayBuffer(CTRL_WORDS * 4), ring: new SharedArrayBuffer(ringSize(0)) }
  return { writer: new RingWriter(init), reader: new RingReader(init), size: init.ring.byteLength }
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
// A step: write a datagram, or let the reader take up to k.
const step = fc.oneof(
  { weight: 3, arbitrary: size.map((n) => ({ write: n })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 50 }).map((k) => ({ take: k })) }
)

describe("DatagramRing", () => {
  it.prop(
    "hands every datagram over whole and in order; refuses room only while the ring is full",
    { steps: fc.array(step, { minLength: 1, maxLength: 400 }) },
    ({ steps }) => {
      const { writer, reader } = make()
      const sent: Array<Uint8Array> = []
      const got: Array<Uint8Array> = []
      const take = (k: number) =>
        reader.take(k, (d) => {
          got.push(d.slice())
          return true
        })
      let i = 0
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
        const d = datagram(i++, s.write)
        writer.buffer.set(d, off!)
        writer.commit(d.length)
        sent.push(d)
      }
      writer.publish()
      take(Number.MAX_SAFE_INTEGER)
      assert.isFalse(reader.pending)
      assert.strictEqual(got.length, sent.length)
      for (let k = 0; k < sent.length; k++) assert.deepStrictEqual(got[k], sent[k])
    }
  )

  it("a reader that refuses a datagram gets it again", () => {
    const { writer, reader } = make()
    for (const n of [10, 20]) {
      writer.buffer.set(datagram(n, n), writer.reserve()!)
      writer.commit(n)
    }
    writer.publish()
    assert.strictEqual(
      reader.take(10, () => false),
      0
    )
    const lengths: Array<number> = []
    reader.take(10, (d) => {
      lengths.push(d.length)
      return true
    })
    assert.deepStrictEqual(lengths, [10, 20])
  })
})
