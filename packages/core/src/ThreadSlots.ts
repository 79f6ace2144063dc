/**
 * Worker-thread slots with the lifecycle that the compose pool and the outbox folder's writer share
 * (docs/design.md#thread-slots):
 * - a slot's thread starts when work is first given to it (`worker`), so nothing runs before it is needed;
 * - once no slot is busy for `idle`, every thread is retired (terminated): a worker at rest between
 *   daily rounds holds no isolate for them;
 * - a thread that fails (`error`) or exits on its own is the slot's failure (`onFail`, with the
 *   reason), and the slot starts a new one for its next work; a retired thread's exit is not a failure;
 * - closing the scope terminates them all, after `onClose` of each slot.
 * The owner keeps its own bookkeeping of work in flight in the slot's `state`, and says how to read
 * it (`busy`).
 */
import type { Worker } from "node:worker_threads"
import { Duration, Effect, type Scope } from "effect"

export interface Slot<S> {
  /** The slot's running thread, if it has one. */
  readonly worker: Worker | undefined
  /** The owner's bookkeeping of this slot (its work in flight). */
  readonly state: S
}

export interface ThreadSlots<S> {
  readonly slots: ReadonlyArray<Slot<S>>
  /** The slot's thread, started now if it has none. */
  readonly worker: (slot: Slot<S>) => Worker
  /** Work is being given: the idle timer stops until `settled`. */
  readonly working: () => void
  /** Work may have ended: once no slot is `busy`, the idle timer starts again. */
  readonly settled: () => void
  /** Threads running now. */
  readonly threads: () => number
  /** True once the scope is closing: give no more work. */
  readonly closed: () => boolean
}

/** `M`: what the owner's threads post back (the owner's protocol; node does not check it). */
export interface Options<S, M> {
  readonly size: number
  /** How long no slot may be busy before every thread is retired. */
  readonly idle: Duration.DurationInput
  /** A slot's fresh bookkeeping. */
  readonly state: () => S
  /** The slot has work in its thread (a busy slot's thread is never retired). */
  readonly busy: (state: S) => boolean
  /** Starts a thread (`ThreadEntry.spawn`). */
  readonly start: () => Worker
  /** What the thread is called in failure reasons ("compose thread"). */
  readonly name: string
  /** A message from the slot's thread; `settled` is called after it. */
  readonly onMessage: (slot: Slot<S>, message: M) => void
  /** The slot's thread failed or exited on its own: fail its work. The slot has no thread any more. */
  readonly onFail: (slot: Slot<S>, reason: string) => void
  /** At scope close, before the threads are terminated: fail the slot's work. */
  readonly onClose?: ((slot: Slot<S>) => void) | undefined
}

interface MutableSlot<S> {
  worker: Worker | undefined
  readonly state: S
}

export const make = <S, M>(options: Options<S, M>): Effect.Effect<ThreadSlots<S>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const idleMs = Duration.toMillis(Duration.decode(options.idle))
    const slots: Array<MutableSlot<S>> = Array.from({ length: Math.max(1, options.size) }, () => ({
      worker: undefined,
      state: options.state()
    }))
    let closed = false
    let idleTimer: ReturnType<typeof setTimeout> | undefined

    // Retiring clears `slot.worker` first, so the thread's exit is not taken for a failure.
    const retire = () => {
      for (const slot of slots) {
        const w = slot.worker
        if (w === undefined || options.busy(slot.state)) continue
        slot.worker = undefined
        void w.terminate()
      }
    }

    const settled = () => {
      if (closed || slots.some((s) => options.busy(s.state))) return
      clearTimeout(idleTimer)
      // A real timer, not Effect's Clock: it frees real resources, whatever clock the owner runs on.
      idleTimer = setTimeout(retire, idleMs)
      idleTimer.unref()
    }

    const start = (slot: MutableSlot<S>): Worker => {
      const w = options.start()
      w.on("message", (message: M) => {
        options.onMessage(slot, message)
        settled()
      })
      const fail = (reason: string) => {
        if (slot.worker !== w) return
        slot.worker = undefined
        options.onFail(slot, reason)
        settled()
      }
      w.on("error", (e) => fail(`${options.name} failed: ${e.message}`))
      w.on("exit", (code) => fail(`${options.name} exited with code ${code}`))
      return w
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        clearTimeout(idleTimer)
        const workers = slots.flatMap((s) => (s.worker === undefined ? [] : [s.worker]))
        for (const slot of slots) {
          slot.worker = undefined
          options.onClose?.(slot)
        }
        return Promise.all(workers.map((w) => w.terminate()))
      })
    )

    return {
      slots,
      worker: (slot) => {
        const s = slot as MutableSlot<S>
        s.worker ??= start(s)
        return s.worker
      },
      working: () => clearTimeout(idleTimer),
      settled,
      threads: () => slots.filter((s) => s.worker !== undefined).length,
      closed: () => closed
    }
  })
