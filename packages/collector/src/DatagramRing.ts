/**
 * The ring in shared memory between the datagram receiver thread (the writer) and the main thread
 * (the reader), DatagramReceiver.ts. The writer puts each datagram as a length word and its bytes
 * (padded to a word) and publishes its write position; the reader decodes in place and publishes its
 * read position. Nothing is allocated per datagram on either side, and the ring bounds the memory
 * between the socket and the collector. Positions grow modulo 2^32 (Int32 words, differences taken
 * unsigned), the offset in the ring is the position masked by its power-of-two size.
 * No imports: the thread loads only this, node:fs and node-unix-socket.
 */

/** Indexes of the control words (Int32Array over `ReceiverInit.ctrl`). */
export const WRITE = 0
export const READ = 1
export const CTRL_WORDS = 2

/** Largest datagram read whole; a longer one arrives cut (and fails to decode, counted invalid). */
export const MAX_DATAGRAM = 65_536
/** Length word that means "skip to the start of the ring". */
export const WRAP = -1
/** Default ring size: thousands of typical (~400-byte) datagrams. */
export const RING_BYTES = 4 * 1024 * 1024

/** A power of two (positions wrap with a mask) with room for a few of the largest datagrams (≥ 512 KiB). */
export const ringSize = (bytes: number = RING_BYTES): number =>
  2 ** Math.ceil(Math.log2(Math.max(bytes, 4 * (4 + MAX_DATAGRAM))))

/** What the thread is started with (`workerData`). */
export interface ReceiverInit {
  readonly path: string
  readonly ctrl: SharedArrayBuffer
  readonly ring: SharedArrayBuffer
}

/** Messages from the thread. */
export type ReceiverMessage =
  | { readonly type: "bound"; readonly direct: boolean }
  | { readonly type: "error"; readonly reason: string }
  | { readonly type: "closed"; readonly received: number }

/** Messages to the thread. */
export type ReceiverCommand = "stop"

/** Bytes a record of `n` bytes takes (length word, bytes, padding to the next word). */
export const recordBytes = (n: number): number => 4 + ((n + 3) & ~3)

/** The receiver thread's side of the ring. */
export class RingWriter {
  private readonly bytes: Uint8Array
  private readonly words: Int32Array
  private readonly ctrl: Int32Array
  private readonly size: number
  private write = 0
  private unpublished = 0
  /** The read position `reserve` last saw. */
  private seen = 0

  constructor(init: Pick<ReceiverInit, "ctrl" | "ring">) {
    this.ctrl = new Int32Array(init.ctrl)
    this.bytes = new Uint8Array(init.ring)
    this.words = new Int32Array(init.ring)
    this.size = this.bytes.length
  }

  /** The ring's bytes, to read a datagram into at an offset `reserve` gave. */
  get buffer(): Uint8Array {
    return this.bytes
  }

  /**
   * Offset (of the bytes, after the length word) where a datagram of up to MAX_DATAGRAM bytes fits,
   * or undefined while the reader has not freed enough room (then `waitForRoom`).
   */
  reserve(): number | undefined {
    for (;;) {
      this.seen = Atomics.load(this.ctrl, READ)
      const used = (this.write - this.seen) >>> 0
      const off = this.write & (this.size - 1)
      const tail = this.size - off
      if (tail >= 4 + MAX_DATAGRAM) return this.size - used >= 4 + MAX_DATAGRAM ? off + 4 : undefined
      // Too close to the end: skip to the start, once the reader has left room there.
      if (this.size - used < tail + 4 + MAX_DATAGRAM) return undefined
      this.words[off >> 2] = WRAP
      this.write = (this.write + tail) | 0
    }
  }

  /** Completes the datagram of `n` bytes written at `reserve`'s offset. */
  commit(n: number): void {
    const off = this.write & (this.size - 1)
    this.words[off >> 2] = n
    this.write = (this.write + recordBytes(n)) | 0
    // Published in small groups: the reader starts decoding while the writer goes on.
    if (++this.unpublished >= 32) this.publish()
  }

  /** Makes what was committed visible to the reader (and wakes it). */
  publish(): void {
    if (this.unpublished === 0) return
    Atomics.store(this.ctrl, WRITE, this.write)
    Atomics.notify(this.ctrl, WRITE)
    this.unpublished = 0
  }

  /** After `reserve` found no room: blocks the thread until the reader takes something (or `millis` pass). */
  waitForRoom(millis: number): void {
    this.publish()
    Atomics.wait(this.ctrl, READ, this.seen, millis)
  }
}

/** The main thread's side of the ring. */
export class RingReader {
  readonly ctrl: Int32Array
  private readonly bytes: Uint8Array
  private readonly words: Int32Array
  private readonly mask: number
  private read = 0

  constructor(init: Pick<ReceiverInit, "ctrl" | "ring">) {
    this.ctrl = new Int32Array(init.ctrl)
    this.bytes = new Uint8Array(init.ring)
    this.words = new Int32Array(init.ring)
    this.mask = this.bytes.length - 1
  }

  /** True when the writer has published datagrams not yet taken. */
  get pending(): boolean {
    return this.read !== Atomics.load(this.ctrl, WRITE)
  }

  /**
   * Hands up to `max` datagrams to `f` (a view into the ring, valid only during the call) in the order
   * received. `f` returns false to keep its datagram for later (the collector is full). Returns the
   * number handed over and taken.
   */
  take(max: number, f: (datagram: Uint8Array) => boolean): number {
    const write = Atomics.load(this.ctrl, WRITE)
    let taken = 0
    let read = this.read
    while (read !== write && taken < max) {
      const off = read & this.mask
      const n = this.words[off >> 2]!
      if (n === WRAP) {
        read = (read + (this.bytes.length - off)) | 0
        continue
      }
      if (!f(this.bytes.subarray(off + 4, off + 4 + n))) break
      read = (read + recordBytes(n)) | 0
      taken++
    }
    if (read !== this.read) {
      this.read = read
      Atomics.store(this.ctrl, READ, read)
      Atomics.notify(this.ctrl, READ)
    }
    return taken
  }

  /** Resolves once the writer publishes past what was last taken (at once if it already has). */
  written(): Promise<void> | undefined {
    const seen = this.read
    const r = waitAsync(this.ctrl, WRITE, seen)
    return r.async ? r.value.then(() => undefined) : undefined
  }
}

// ES2024's Atomics.waitAsync (Node ≥ 16); the repository's lib is ES2022.
const waitAsync = (
  Atomics as unknown as {
    waitAsync: (
      a: Int32Array,
      i: number,
      v: number
    ) => { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> }
  }
).waitAsync
