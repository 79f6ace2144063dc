/**
 * Entry of the datagram receiver thread (DatagramReceiver.ts): binds the socket and copies every
 * datagram into the shared ring, a repeat of bytes seen before as their number only
 * (DatagramRing.ts `DatagramInterner`): the main thread then decodes each distinct datagram once.
 *
 * node-unix-socket creates and binds the socket (Node cannot) and tells when it is readable, but its
 * own read path allocates (and zeroes) 64 KiB per datagram and keeps every datagram of a drain alive
 * until the drain ends: unbounded memory when the sender keeps up, and no way to stop reading.
 * So on Linux the thread reads the socket's descriptor itself (`fs.readSync`, one datagram per
 * read(2), straight into the ring, found through /proc): when the library hands over a second
 * datagram in one wake-up, the thread reads the rest until the queue is empty, and stops reading
 * while the ring is full (the datagrams wait in the kernel). Without /proc (other systems)
 * the library's datagrams are copied into the ring one by one.
 */
import { readdirSync, readFileSync, readlinkSync, readSync } from "node:fs"
import { parentPort, workerData } from "node:worker_threads"
import { DgramSocket } from "node-unix-socket"
import {
  DatagramInterner,
  MAX_DATAGRAM,
  type ReceiverCommand,
  type ReceiverInit,
  type ReceiverMessage,
  RingWriter
} from "./DatagramRing.js"

// Every drain ends in an EAGAIN error: without a stack it costs little (this thread's errors are
// only ever reported by message).
Error.stackTraceLimit = 0

const init = workerData as ReceiverInit
const ring = new RingWriter(init, new DatagramInterner(undefined, undefined, undefined, init.copies))
const bytes = ring.buffer
const post = (m: ReceiverMessage) => parentPort?.postMessage(m)
let received = 0

/** Where the next datagram goes; waits (reading nothing: the kernel keeps them) until there is room. */
const reserve = (): number => {
  for (;;) {
    const off = ring.reserve()
    if (off !== undefined) return off
    ring.waitForRoom(100)
  }
}

/** The datagram of `n` bytes read at `reserve`'s offset: whole the first time, its number when seen before. */
const finish = (n: number) => {
  ring.commit(n)
  received++
}

const copy = (datagram: Buffer) => {
  const off = reserve()
  const n = Math.min(datagram.length, MAX_DATAGRAM)
  bytes.set(datagram.subarray(0, n), off)
  finish(n)
}

/**
 * The socket's descriptor: among this process's descriptors, the socket whose inode /proc/net/unix
 * lists with `path` (several may be listed: a socket another process still holds after its file was
 * replaced keeps the path there).
 */
const descriptorOf = (path: string): number | undefined => {
  try {
    const targets = new Set(
      readFileSync("/proc/net/unix", "utf8")
        .split("\n")
        .filter((l) => l.endsWith(` ${path}`))
        .map((l) => `socket:[${l.trim().split(/\s+/)[6]}]`)
    )
    for (const fd of readdirSync("/proc/self/fd")) {
      try {
        if (targets.has(readlinkSync(`/proc/self/fd/${fd}`))) return Number(fd)
      } catch {}
    }
  } catch {}
  return undefined
}

let fd: number | undefined

/** Reads until the queue is empty (EAGAIN: the library made the descriptor non-blocking). */
const drain = () => {
  if (fd === undefined) return ring.publish()
  for (;;) {
    const off = reserve()
    let n: number
    try {
      n = readSync(fd, bytes, off, MAX_DATAGRAM, null)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") post({ type: "error", reason: (e as Error).message })
      break
    }
    finish(n)
  }
  ring.publish()
}

const socket = new DgramSocket()
// The library re-emits each datagram as `data` on a later tick; here it is copied at once instead.
socket.removeAllListeners("_data")
// A lone datagram is taken as the library gives it (it then finds the queue empty itself, cheaply);
// a second one in the same wake-up means a backlog, which is read directly until empty, ending in
// one EAGAIN error (~10 µs) for the lot.
let streak = 0
const endOfWakeUp = () => {
  streak = 0
  ring.publish()
}
socket.on("_data", (datagram: Buffer) => {
  copy(datagram)
  if (++streak === 1) setImmediate(endOfWakeUp)
  else drain()
})
socket.on("error", (e: Error) => post({ type: "error", reason: e.message }))

try {
  socket.bind(init.path)
  fd = descriptorOf(init.path)
  post({ type: "bound", direct: fd !== undefined })
} catch (e) {
  post({ type: "error", reason: (e as Error).message })
  socket.close()
  parentPort?.close()
}

// Stop: read what the kernel still holds until it has been empty a few times in a row (a sender
// may be mid-send), then close; what is in the ring is the main thread's.
const stop = () => {
  let quiet = 0
  const turn = () => {
    const before = received
    drain()
    quiet = received === before ? quiet + 1 : 0
    if (quiet < 3) {
      setTimeout(turn, 1)
      return
    }
    socket.close()
    ring.publish()
    post({ type: "closed", received })
    // The thread ends once the socket's handle has closed: terminating it earlier would close the
    // handle a second time (a libuv assertion). node-unix-socket 0.2.7 also closes, when a thread that
    // loaded it ends, every socket it made in the process: another of its sockets must be closed
    // before the source stops (nothing else uses it in the worker; the tests close their clients).
    parentPort?.close()
  }
  turn()
}

parentPort?.on("message", (m: ReceiverCommand) => {
  if (m === "stop") stop()
})
