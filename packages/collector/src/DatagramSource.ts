/**
 * Listens for libtlsrpt datagrams (Postfix ≥ 3.10, `smtp_tlsrpt_socket_name`) on an AF_UNIX
 * SOCK_DGRAM socket and hands each one's row to the `Collector` (aggregation, batched flush).
 *
 * - Drains fast: libtlsrpt sends with MSG_DONTWAIT, so a full kernel queue (net.unix.max_dgram_qlen,
 *   10 by default) loses the datagram at the sender. The socket is read on a thread of its own
 *   (DatagramReceiver.ts) into a shared ring, a repeat of bytes seen before as their number; this
 *   thread decodes each distinct datagram once and merges its row for each repeat synchronously,
 *   no await per datagram.
 * - Back-pressure: when the Collector's buffer is full, decoding waits for its space; the ring fills,
 *   the receiver thread stops reading and the datagrams wait in the kernel. Memory stays bounded.
 * - Bad input never crashes nor stores part of a datagram: invalid UTF-8 is repaired (U+FFFD) and
 *   kept; invalid JSON, wrong types or unknown codes are counted in
 *   `tlsrpt_datagrams_total{outcome}`, logged at most once a minute with the count, and written to
 *   `invalidDatagramDir` (bounded in files and bytes).
 * - A stale socket file (a crashed collector) is replaced; a socket some process still reads is an
 *   error (`SocketInUse`), never taken over.
 * - Stop (scope close, SIGTERM): the path is unlinked first, so senders get ENOENT rather than a
 *   queue nobody reads; then what the kernel already queued is read, and the socket closed. The
 *   Collector's own finalizer (it outlives this layer) then flushes everything.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFile
} from "node:fs"
import { createConnection } from "node:net"
import { dirname, join } from "node:path"
import { Day } from "@tlsrpt/core"
import type { NewResultRow } from "@tlsrpt/store"
import { Context, Data, Deferred, Effect, Either, Exit, Layer, Metric, Runtime, type Scope } from "effect"
import { Collector } from "./Collector.js"
import * as Datagram from "./Datagram.js"
import * as DatagramReceiver from "./DatagramReceiver.js"

export interface DatagramSourceConfig {
  /** Absolute path of the socket. */
  readonly socket: string
  /** File mode of the socket, e.g. 0o660 (the MTA's user must be able to write). Default 0o660. */
  readonly socketMode?: number | undefined
  /** Group of the socket (name from /etc/group, or gid), e.g. `postfix`. Default: unchanged. */
  readonly socketGroup?: string | number | undefined
  /** Where invalid datagrams are written for inspection; none when undefined. */
  readonly invalidDatagramDir?: string | undefined
  /** Bounds of `invalidDatagramDir`. Defaults 1,000 files and 16 MiB. */
  readonly maxInvalidFiles?: number | undefined
  readonly maxInvalidBytes?: number | undefined
  /**
   * Bytes of the ring the receiver thread fills (DatagramReceiver.ts): what is held in memory beyond
   * the collector's buffer. Rounded up to a power of two, at least 512 KiB. Default 4 MiB.
   */
  readonly ringBytes?: number | undefined
}

export class SocketInUse extends Data.TaggedError("SocketInUse")<{ readonly path: string }> {
  override get message(): string {
    return `${this.path}: a running collector is listening on this socket`
  }
}

export class SocketError extends Data.TaggedError("SocketError")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
}

export type DatagramOutcome = "stored" | "repaired" | "invalid-json" | "invalid"

const datagramsTotal = Metric.counter("tlsrpt_datagrams_total", {
  description: "libtlsrpt datagrams received, by outcome (stored, repaired, invalid-json, invalid)",
  incremental: true
})
const counterOf = (outcome: DatagramOutcome) => Metric.tagged(datagramsTotal, "outcome", outcome)
const counters = {
  stored: counterOf("stored"),
  repaired: counterOf("repaired"),
  "invalid-json": counterOf("invalid-json"),
  invalid: counterOf("invalid")
} satisfies Record<DatagramOutcome, unknown>

export interface DatagramStats {
  readonly stored: number
  readonly repaired: number
  readonly "invalid-json": number
  readonly invalid: number
}

export class DatagramSource extends Context.Tag("@tlsrpt/collector/DatagramSource")<
  DatagramSource,
  {
    readonly path: string
    readonly stats: Effect.Effect<DatagramStats>
  }
>() {
  static readonly layer = (
    config: DatagramSourceConfig
  ): Layer.Layer<DatagramSource, SocketInUse | SocketError, Collector> => Layer.scoped(DatagramSource, make(config))
}

/** What is at `path`: nothing, a socket someone reads, a stale socket, or something else. */
const probe = (path: string): Effect.Effect<"free" | "live" | "stale" | "other"> =>
  Effect.async((resume) => {
    let st: ReturnType<typeof lstatSync>
    try {
      st = lstatSync(path)
    } catch {
      return resume(Effect.succeed("free"))
    }
    if (!st.isSocket()) return resume(Effect.succeed("other"))
    // A stream connect to a bound datagram socket fails with EPROTOTYPE; to a socket file nobody
    // holds, with ECONNREFUSED. Nothing is sent to a live collector.
    const c = createConnection(path)
    c.once("connect", () => {
      c.destroy()
      resume(Effect.succeed("live"))
    })
    c.once("error", (e: NodeJS.ErrnoException) => {
      c.destroy()
      resume(Effect.succeed(e.code === "ECONNREFUSED" ? "stale" : "live"))
    })
  })

/** A group name from /etc/group (Node has no getgrnam), or a gid as given. */
const gidOf = (group: string | number): number | undefined => {
  if (typeof group === "number") return group
  if (/^\d+$/.test(group)) return Number(group)
  const line = readFileSync("/etc/group", "utf8")
    .split("\n")
    .find((l) => l.split(":")[0] === group)
  return line === undefined ? undefined : Number(line.split(":")[2])
}

const syncOr = <A>(path: string, f: () => A): Effect.Effect<A, SocketError> =>
  Effect.try({ try: f, catch: (e) => new SocketError({ path, reason: (e as Error).message }) })

const ONE_MINUTE = 60_000

type Buffers = Pick<DatagramReceiver.ReceiverInit, "ctrl" | "ring" | "copies">

/**
 * The shared buffers of stopped sources (ring and interner copies, ~20 MiB of address space, resident
 * where written), reused by the next source in the process rather than freed: freeing buffers that
 * large raises glibc's mmap threshold, after which the process's later allocations below it come
 * from malloc's heap and stay there (a bench or tests that start source after source; the worker
 * starts one).
 */
const spareBuffers: Array<Buffers> = []

const takeBuffers = (ringBytes: number): Buffers => {
  const i = spareBuffers.findIndex((b) => b.ring.byteLength === ringBytes)
  if (i === -1)
    return {
      ctrl: new SharedArrayBuffer(DatagramReceiver.CTRL_WORDS * 4),
      ring: new SharedArrayBuffer(ringBytes),
      copies: new SharedArrayBuffer(DatagramReceiver.COPIES_BYTES)
    }
  const { ctrl, ring, copies } = spareBuffers.splice(i, 1)[0]!
  new Int32Array(ctrl).fill(0)
  return { ctrl, ring, copies }
}

const make = (
  config: DatagramSourceConfig
): Effect.Effect<Context.Tag.Service<DatagramSource>, SocketInUse | SocketError, Collector | Scope.Scope> =>
  Effect.gen(function* () {
    const collector = yield* Collector
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const clock = yield* Effect.clock
    const path = config.socket

    yield* syncOr(path, () => mkdirSync(dirname(path), { recursive: true }))
    const state = yield* probe(path)
    if (state === "live") return yield* new SocketInUse({ path })
    if (state === "other") return yield* new SocketError({ path, reason: "exists and is not a socket; not replaced" })
    if (state === "stale") {
      yield* syncOr(path, () => unlinkSync(path))
      yield* Effect.logWarning("replaced a stale datagram socket (a previous collector did not stop cleanly)").pipe(
        Effect.annotateLogs({ socket: path })
      )
    }

    const stats = { stored: 0, repaired: 0, "invalid-json": 0, invalid: 0 }
    const count = (outcome: DatagramOutcome) => {
      stats[outcome]++
      counters[outcome].unsafeUpdate(1, [])
    }

    // --- rate-limited logging (at most once a minute per kind, with the count since the last line)
    const lastLog = new Map<string, { at: number; suppressed: number }>()
    const logLimited = (kind: string, message: string, annotations: Record<string, unknown>) => {
      const now = clock.unsafeCurrentTimeMillis()
      const last = lastLog.get(kind)
      if (last !== undefined && now - last.at < ONE_MINUTE) {
        last.suppressed++
        return
      }
      lastLog.set(kind, { at: now, suppressed: 0 })
      runFork(
        Effect.logWarning(message).pipe(
          Effect.annotateLogs({ ...annotations, socket: path, sinceLastLog: (last?.suppressed ?? 0) + 1 }),
          Effect.annotateLogs("service", "DatagramSource")
        )
      )
    }

    // --- invalid datagrams kept for inspection, bounded in files and bytes
    const dumpDir = config.invalidDatagramDir
    const maxFiles = config.maxInvalidFiles ?? 1000
    const maxBytes = config.maxInvalidBytes ?? 16 * 1024 * 1024
    let dumpFiles = 0
    let dumpBytes = 0
    if (dumpDir !== undefined) {
      yield* syncOr(dumpDir, () => {
        mkdirSync(dumpDir, { recursive: true, mode: 0o700 })
        for (const f of readdirSync(dumpDir)) {
          dumpFiles++
          dumpBytes += statSync(join(dumpDir, f)).size
        }
      })
    }
    let dumpSeq = 0
    /** Writes a copy of `bytes` out (within the bounds); the copy, or undefined when nothing was written. */
    const dump = (bytes: Uint8Array): Buffer | undefined => {
      if (dumpDir === undefined || dumpFiles >= maxFiles || dumpBytes + bytes.length > maxBytes) return undefined
      dumpFiles++
      dumpBytes += bytes.length
      const name = `${new Date(clock.unsafeCurrentTimeMillis()).toISOString().replace(/[:.]/g, "")}-${process.pid}-${dumpSeq++}.datagram`
      // A copy: `bytes` is a view into the receiver's ring, reused once taken.
      const copy = Buffer.from(bytes)
      writesPending++
      writeFile(join(dumpDir, name), copy, { mode: 0o600 }, (e) => {
        if (e !== null) logLimited("dump", "could not write an invalid datagram", { error: e.message })
        if (--writesPending === 0) writesDone?.()
      })
      return copy
    }
    // Stop waits for the writes in progress: a stopped source has written what it refused.
    let writesPending = 0
    let writesDone: (() => void) | undefined
    const dumpsWritten = Effect.async<void>((resume) => {
      if (writesPending === 0) return resume(Effect.void)
      writesDone = () => resume(Effect.void)
    })

    // --- the receive path
    const dayOfMillis = Day.makeFromMillisCached()
    const today = (): Day.Day => dayOfMillis(clock.unsafeCurrentTimeMillis())

    // Each distinct datagram is decoded once: the receiver thread sends a repeat as its number.
    const table = Datagram.makeTable()
    // The bytes of numbered invalid datagrams that were written out, to write out their repeats too
    // (bounded by the directory's bytes: only what was written is kept).
    let invalidCopies = new Map<number, Uint8Array>()
    // The receive day, taken once per slice of the ring.
    let day = today()
    const one: Array<NewResultRow> = []

    /** Offers a datagram's row (false, nothing counted, when the collector is full) or refuses it. */
    const onReceived = (
      received: Either.Either<Datagram.Received, Datagram.InvalidDatagram>,
      id: number,
      bytes: Uint8Array | undefined
    ): boolean => {
      if (Either.isLeft(received)) {
        const e = received.left
        count(e.reason)
        const raw = bytes ?? invalidCopies.get(id)
        if (raw !== undefined) {
          const copy = dump(raw)
          if (copy !== undefined && bytes !== undefined && id >= 0) invalidCopies.set(id, copy)
        }
        logLimited(e.reason, "invalid datagram; not stored", {
          reason: e.reason,
          field: e.field,
          error: e.message,
          bytes: raw?.length
        })
        return true
      }
      const r = received.right
      one[0] = r.row
      if (!collector.offerRows(one)) {
        full = true
        return false
      }
      count(r.repaired ? "repaired" : "stored")
      if (r.repaired) logLimited("repaired", "datagram was not UTF-8; stored with U+FFFD", { domain: r.d })
      if (r.dpv !== "1")
        logLimited("dpv", "datagram protocol version not 1; processed as version 1", { dpv: r.dpv ?? "(missing)" })
      if (r.countMismatch) logLimited("t", "a policy's t differs from its number of failure details", { domain: r.d })
      return true
    }

    const consumer: DatagramReceiver.RingConsumer = {
      datagram: (id, bytes) => onReceived(table.define(id, bytes, day), id, bytes),
      repeat: (id) => onReceived(table.repeat(id, day), id, undefined),
      forget: () => {
        table.forget()
        invalidCopies = new Map()
      }
    }
    /** Takes up to `max` datagrams from the ring; `full` when the collector refused one. */
    let full = false
    const takeFromRing = (max: number): number => {
      day = today()
      full = false
      return ring.take(max, consumer)
    }

    // --- the receiver thread and the ring it fills (DatagramReceiver.ts)
    const init: DatagramReceiver.ReceiverInit = { path, ...takeBuffers(DatagramReceiver.ringSize(config.ringBytes)) }
    const ring = new DatagramReceiver.RingReader(init)
    const thread = DatagramReceiver.spawn(init)
    let received = 0
    // The thread ends by itself (after "stop", or when it cannot bind); never terminated, see DatagramReceiverMain.ts.
    const exited = Effect.runSync(Deferred.make<void>())
    const stopThread = Effect.suspend(() => {
      thread.postMessage("stop" satisfies DatagramReceiver.ReceiverCommand)
      return Deferred.await(exited)
    })
    const bound = yield* Effect.async<void, SocketError>((resume) => {
      let started = false
      thread.on("message", (m: DatagramReceiver.ReceiverMessage) => {
        if (m.type === "bound") {
          started = true
          resume(Effect.void)
        } else if (m.type === "error") {
          if (!started) resume(Effect.fail(new SocketError({ path, reason: m.reason })))
          else logLimited("socket", "datagram socket error", { error: m.reason })
        } else received = m.received
      })
      const gone = (reason: string) => {
        Deferred.unsafeDone(exited, Exit.void)
        if (!started) resume(Effect.fail(new SocketError({ path, reason })))
        else if (reason !== "exited with code 0") logLimited("thread", "datagram receiver thread ended", { reason })
      }
      thread.on("error", (e) => gone(e.message))
      thread.on("exit", (code) => gone(`exited with code ${code}`))
    }).pipe(Effect.either)
    if (Either.isLeft(bound)) {
      yield* Deferred.await(exited)
      return yield* bound.left
    }

    // Decodes from the ring in slices, giving the event loop (flush fiber, timers) a turn between
    // them; waits for the collector's space when it is full (the thread then fills the ring and stops
    // reading: back-pressure into the kernel).
    let stopping = false
    const SLICE = 1024
    const pump = (): void => {
      if (stopping) return
      const taken = takeFromRing(SLICE)
      if (full) runFork(Effect.andThen(collector.space, Effect.sync(pump)))
      else if (ring.pending) setImmediate(pump)
      // A stream: look again in 1 ms and take what came meanwhile, rather than be woken for each
      // datagram (a wake-up per datagram costs both threads CPU the reader needs); idle: sleep.
      else if (taken > 0) setTimeout(pump, 1)
      else {
        const written = ring.written()
        if (written === undefined) setImmediate(pump)
        else void written.then(pump)
      }
    }
    pump()

    yield* syncOr(path, () => {
      chmodSync(path, config.socketMode ?? 0o660)
      if (config.socketGroup !== undefined) {
        const gid = gidOf(config.socketGroup)
        if (gid === undefined) throw new Error(`socketGroup: no group ${String(config.socketGroup)}`)
        chownSync(path, -1, gid)
      }
    }).pipe(Effect.tapError(() => stopThread))
    yield* Effect.logInfo("listening for libtlsrpt datagrams").pipe(
      Effect.annotateLogs({ socket: path, service: "DatagramSource" })
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        // Unlink first: new sends fail at the sender (not acknowledged); what is queued is still ours.
        yield* Effect.sync(() => {
          try {
            unlinkSync(path)
          } catch {}
        })
        // The thread reads what the kernel holds, closes the socket and ends; meanwhile the pump goes on.
        yield* stopThread
        // From here the finalizer takes from the ring, not the pump (a pending wait is woken to see that).
        stopping = true
        Atomics.notify(ring.ctrl, DatagramReceiver.WRITE)
        // Whatever is left in the ring, waiting for the collector's space as needed.
        while (ring.pending) {
          takeFromRing(Number.MAX_SAFE_INTEGER)
          if (full) yield* collector.space
        }
        yield* dumpsWritten
        // The thread has ended and the ring is empty: the buffers are free for the next source.
        spareBuffers.push(init)
        yield* Effect.logInfo("datagram socket closed").pipe(
          Effect.annotateLogs({ socket: path, service: "DatagramSource", received, ...stats })
        )
      })
    )

    return { path, stats: Effect.sync(() => ({ ...stats })) }
  })
