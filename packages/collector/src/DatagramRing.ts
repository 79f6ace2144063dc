/**
 * The ring in shared memory between the datagram receiver thread (the writer) and the main thread
 * (the reader), DatagramReceiver.ts. The writer puts each datagram as a record (two header words,
 * then its bytes padded to a word) and publishes its write position; the reader decodes in place and
 * publishes its read position. Nothing is allocated per datagram on either side, and the ring bounds
 * the memory between the socket and the collector. Positions grow modulo 2^32 (Int32 words,
 * differences taken unsigned), the offset in the ring is the position masked by its power-of-two size.
 *
 * libtlsrpt sends the same bytes for every delivery with the same outcome to a domain, so the writer
 * interns datagrams (`DatagramInterner`): the first sight of some bytes goes over whole with a
 * number, each repeat as that number alone (a `REPEAT` record, no bytes), and the reader decodes a
 * datagram once and merges its row again for each repeat (docs/design.md#datagram-receiver).
 * No imports: the thread loads only this, node:fs and node-unix-socket.
 */

/** Indexes of the control words (Int32Array over `ReceiverInit.ctrl`). */
export const WRITE = 0
export const READ = 1
export const CTRL_WORDS = 2

/** Largest datagram read whole; a longer one arrives cut (and fails to decode, counted invalid). */
export const MAX_DATAGRAM = 65_536
/** Record header: [length or kind, datagram number]. */
export const HEADER = 8
/** Kind word: "skip to the start of the ring". */
export const WRAP = -1
/** Kind word: the datagram of this number again. */
export const REPEAT = -2
/** Flag of a datagram's number: every number given before is void (the writer's interner was cleared). */
export const FORGET = 1 << 30
/** Datagram number of bytes that were not interned (every sight goes over whole). */
export const NOT_INTERNED = -1
/** Default ring size: thousands of typical (~400-byte) datagrams. */
export const RING_BYTES = 4 * 1024 * 1024

/** A power of two (positions wrap with a mask) with room for a few of the largest datagrams (≥ 512 KiB). */
export const ringSize = (bytes: number = RING_BYTES): number =>
  2 ** Math.ceil(Math.log2(Math.max(bytes, 4 * (HEADER + MAX_DATAGRAM))))

/** Bytes the interner keeps copies in (`DatagramInterner`). */
export const COPIES_BYTES = 16 * 1024 * 1024

/** What the thread is started with (`workerData`). */
export interface ReceiverInit {
  readonly path: string
  readonly ctrl: SharedArrayBuffer
  readonly ring: SharedArrayBuffer
  /** Where the interner keeps its copies (COPIES_BYTES). */
  readonly copies: SharedArrayBuffer
}

/** Messages from the thread. */
export type ReceiverMessage =
  | { readonly type: "bound"; readonly direct: boolean }
  | { readonly type: "error"; readonly reason: string }
  | { readonly type: "closed"; readonly received: number }

/** Messages to the thread. */
export type ReceiverCommand = "stop"

/** Bytes a record of a datagram of `n` bytes takes (header, bytes, padding to the next word). */
export const recordBytes = (n: number): number => HEADER + ((n + 3) & ~3)

/**
 * The writer's table of datagrams seen, by their exact bytes (bytes that are not UTF-8 stay apart):
 * a hash over the datagram's words into an open-addressed table, each entry's bytes copied into one
 * buffer outside the V8 heap and compared whole on a hash match. Written out rather than a
 * `Map<string, number>` because the string key (a latin1 copy of every datagram, then hashed) cost
 * this thread more than the read itself, and allocated for every datagram. The copies are kept in
 * a buffer the caller gives (DatagramSource reuses it, with the ring, for the next source in the
 * process: freeing large buffers raises glibc's mmap threshold, and later allocations then stay in
 * malloc's heap, measured +10–30 MB of RSS in the `datagram` bench), or one allocated on first use.
 * Bounded in entries and bytes, and only datagrams up to `maxDatagram` bytes are kept; when a new
 * one finds it full it is cleared, and the reader told (`FORGET`).
 */
export class DatagramInterner {
  private readonly slots: Int32Array
  private readonly hashes: Int32Array
  private readonly lengths: Int32Array
  /** Byte offset of an entry's copy in `copies` (word-aligned). */
  private readonly places: Int32Array
  private copyBytes: Uint8Array | undefined
  private copyWords: Int32Array | undefined
  private entries = 0
  private used = 0
  /** Whether the last `intern` found the bytes already known. */
  seen = false
  /** Whether the last `intern` cleared the table to make room (numbers start again from 0). */
  cleared = false

  constructor(
    private readonly maxEntries = 32_768,
    private readonly maxBytes = COPIES_BYTES,
    private readonly maxDatagram = 8192,
    copies?: ArrayBufferLike
  ) {
    if (copies !== undefined) {
      this.maxBytes = Math.min(maxBytes, copies.byteLength & ~3)
      this.copyBytes = new Uint8Array(copies)
      this.copyWords = new Int32Array(copies, 0, copies.byteLength >> 2)
    }
    this.slots = new Int32Array(2 ** Math.ceil(Math.log2(2 * maxEntries + 2)))
    this.hashes = new Int32Array(maxEntries)
    this.lengths = new Int32Array(maxEntries)
    this.places = new Int32Array(maxEntries)
  }

  /**
   * The number of the `n` bytes at byte `start` (a multiple of 4) of `bytes` (`words`: the same
   * memory as Int32s; `seen` tells whether they came before), or NOT_INTERNED for a datagram too
   * large to keep.
   */
  intern(bytes: Uint8Array, words: Int32Array, start: number, n: number): number {
    this.seen = false
    this.cleared = false
    if (n > this.maxDatagram || n > this.maxBytes) return NOT_INTERNED
    const w0 = start >> 2
    const whole = n >> 2
    let h = n
    for (let i = 0; i < whole; i++) h = Math.imul(h ^ words[w0 + i]!, 0x9e3779b1) ^ (h >>> 15)
    for (let i = whole << 2; i < n; i++) h = Math.imul(h ^ bytes[start + i]!, 0x9e3779b1) ^ (h >>> 15)
    h ^= h >>> 16
    const mask = this.slots.length - 1
    let slot = h & mask
    for (let e = this.slots[slot]! - 1; e >= 0; e = this.slots[slot]! - 1) {
      if (this.hashes[e] === h && this.lengths[e] === n && this.same(e, bytes, words, start, n)) {
        this.seen = true
        return e
      }
      slot = (slot + 1) & mask
    }
    if (this.entries >= this.maxEntries || this.used + n > this.maxBytes) {
      this.slots.fill(0)
      this.entries = 0
      this.used = 0
      this.cleared = true
      slot = h & mask
    }
    if (this.copyBytes === undefined) {
      const buffer = new ArrayBuffer((this.maxBytes + 3) & ~3)
      this.copyBytes = new Uint8Array(buffer)
      this.copyWords = new Int32Array(buffer)
    }
    this.copyBytes.set(bytes.subarray(start, start + n), this.used)
    const e = this.entries++
    this.hashes[e] = h
    this.lengths[e] = n
    this.places[e] = this.used
    this.used += (n + 3) & ~3
    this.slots[slot] = e + 1
    return e
  }

  private same(e: number, bytes: Uint8Array, words: Int32Array, start: number, n: number): boolean {
    const at = this.places[e]!
    const cw = this.copyWords!
    const c0 = at >> 2
    const w0 = start >> 2
    const whole = n >> 2
    for (let i = 0; i < whole; i++) if (cw[c0 + i] !== words[w0 + i]) return false
    const cb = this.copyBytes!
    for (let i = whole << 2; i < n; i++) if (cb[at + i] !== bytes[start + i]) return false
    return true
  }
}

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

  constructor(
    init: Pick<ReceiverInit, "ctrl" | "ring">,
    private readonly interner: DatagramInterner = new DatagramInterner()
  ) {
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
   * Offset (of the bytes, after the header) where a datagram of up to MAX_DATAGRAM bytes fits,
   * or undefined while the reader has not freed enough room (then `waitForRoom`). Every record is
   * written at the offset the last `reserve` gave.
   */
  reserve(): number | undefined {
    for (;;) {
      this.seen = Atomics.load(this.ctrl, READ)
      const used = (this.write - this.seen) >>> 0
      const off = this.write & (this.size - 1)
      const tail = this.size - off
      if (tail >= HEADER + MAX_DATAGRAM) return this.size - used >= HEADER + MAX_DATAGRAM ? off + HEADER : undefined
      // Too close to the end: skip to the start, once the reader has left room there.
      if (this.size - used < tail + HEADER + MAX_DATAGRAM) return undefined
      this.words[off >> 2] = WRAP
      this.write = (this.write + tail) | 0
    }
  }

  /**
   * Completes the datagram of `n` bytes written at `reserve`'s offset: whole with a new number the
   * first time, its number alone (REPEAT) when the same bytes came before.
   */
  commit(n: number): void {
    const id = this.interner.intern(this.bytes, this.words, (this.write & (this.size - 1)) + HEADER, n)
    if (this.interner.seen) this.put(REPEAT, id, HEADER)
    else this.put(n, this.interner.cleared ? id | FORGET : id, recordBytes(n))
  }

  private put(kind: number, id: number, bytes: number): void {
    const w = (this.write & (this.size - 1)) >> 2
    this.words[w] = kind
    this.words[w + 1] = id
    this.write = (this.write + bytes) | 0
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

/** What the reader hands each record to. A `false` keeps the record for the next `take` (the collector is full). */
export interface RingConsumer {
  /** A datagram's bytes (a view into the ring, valid only during the call), first sight of number `id` (or NOT_INTERNED). */
  readonly datagram: (id: number, bytes: Uint8Array) => boolean
  /** Datagram `id` again. */
  readonly repeat: (id: number) => boolean
  /** Every number given so far is void; the next ones start again from 0. */
  readonly forget: () => void
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
   * Hands up to `max` datagrams (first sights and repeats) to `c` in the order received. Returns the
   * number handed over and taken.
   */
  take(max: number, c: RingConsumer): number {
    const write = Atomics.load(this.ctrl, WRITE)
    let taken = 0
    let read = this.read
    while (read !== write && taken < max) {
      const off = read & this.mask
      const w = off >> 2
      const n = this.words[w]!
      if (n === WRAP) {
        read = (read + (this.bytes.length - off)) | 0
        continue
      }
      let id = this.words[w + 1]!
      if (n === REPEAT) {
        if (!c.repeat(id)) break
        read = (read + HEADER) | 0
      } else {
        // Forgotten again if this datagram is refused and handed over once more: the same state.
        if (id !== NOT_INTERNED && (id & FORGET) !== 0) {
          c.forget()
          id ^= FORGET
        }
        if (!c.datagram(id, this.bytes.subarray(off + HEADER, off + HEADER + n))) break
        read = (read + recordBytes(n)) | 0
      }
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
