/**
 * The datagram socket read on a thread of its own (DatagramReceiverMain.ts), so that reading never
 * waits for the main thread's decoding, aggregation or flushes: the kernel queues only
 * `net.unix.max_dgram_qlen` datagrams (10 by default), and a reader that pauses for longer than
 * those take to arrive makes libtlsrpt lose the next ones (README.md#postfix-libtlsrpt).
 *
 * Hand-over is a ring in shared memory (DatagramRing.ts), not messages; when it is full the thread
 * stops reading and the datagrams stay in the kernel (back-pressure), never in a growing queue.
 */
import type { Worker } from "node:worker_threads"
import { ThreadEntry } from "@tlsrpt/core"
import type { ReceiverInit } from "./DatagramRing.js"

export * from "./DatagramRing.js"

// The thread allocates next to nothing on its heap (datagrams go to the ring): a 1 MB semi-space
// (docs/design.md#thread-memory).
export const spawn = (init: ReceiverInit): Worker =>
  ThreadEntry.spawn(import.meta.url, "DatagramReceiverMain", { workerData: init, semiSpaceMb: 1 })
