/**
 * The datagram socket read on a thread of its own (DatagramReceiverMain.ts), so that reading never
 * waits for the main thread's decoding, aggregation or flushes: the kernel queues only
 * `net.unix.max_dgram_qlen` datagrams (10 by default), and a reader that pauses for longer than
 * those take to arrive makes libtlsrpt lose the next ones (README.md#postfix-libtlsrpt).
 *
 * Hand-over is a ring in shared memory, not messages: the thread writes each datagram's bytes
 * (a length word, then the bytes) and publishes its write position; the main thread decodes from
 * the ring in place and publishes its read position. Nothing is allocated per datagram on either
 * side, and the ring bounds memory: when it is full the thread stops reading and the datagrams stay
 * in the kernel (back-pressure, as the issue asks), never in a growing queue.
 */
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"

/** Indexes of the control words (Int32Array over `ReceiverInit.ctrl`). */
export const WRITE = 0
export const READ = 1
export const CTRL_WORDS = 2

/** Largest datagram read whole; a longer one arrives cut (and fails to decode, counted invalid). */
export const MAX_DATAGRAM = 65_536
/** Length word that means "skip to the start of the ring". */
export const WRAP = -1
/** Ring size: a power of two (positions wrap with a mask), holding thousands of typical datagrams. */
export const RING_BYTES = 4 * 1024 * 1024

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

export const spawn = (init: ReceiverInit): Worker =>
  ThreadEntry.spawn(import.meta.url, "DatagramReceiverMain", { workerData: init })

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

  /** True when the thread has published datagrams not yet taken. */
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

  /** Resolves once the thread publishes past what was last taken (at once if it already has). */
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
