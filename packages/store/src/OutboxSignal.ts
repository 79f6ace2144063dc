/**
 * "The outbox has new due work": raised by the store after a commit that queues messages
 * (`ResultStore.markSentAndEnqueueAll`, `Outbox.enqueue`, `Outbox.requeue`), so the delivery loop sleeps
 * until then or until the next attempt is due, instead of polling (docs/design.md#delivery-loop). One per
 * store layer, shared by its ports: it reaches the listeners of this process only; other writers (another
 * fleet host, the CLI's `tlsrpt outbox retry`) are found by the delivery loop's safety-net pass.
 */
import { Context, Effect, Layer, PubSub, Queue, type Scope } from "effect"

/** A subscription to the signal, taken before the pass it guards so that no raise is missed. */
export interface OutboxListener {
  /** Resumes at the first raise not yet consumed (at once if one came since the last `clear`). */
  readonly next: Effect.Effect<void>
  /** Forgets the raises so far: the pass about to run sees their messages. */
  readonly clear: Effect.Effect<void>
}

export class OutboxSignal extends Context.Tag("@tlsrpt/store/OutboxSignal")<
  OutboxSignal,
  {
    /** Raises the signal: every listener's `next` resumes. */
    readonly raise: Effect.Effect<void>
    /** A listener for the life of the scope. */
    readonly listen: Effect.Effect<OutboxListener, never, Scope.Scope>
  }
>() {
  static readonly make: Effect.Effect<OutboxSignal["Type"]> = Effect.map(
    // Sliding, capacity 1: a listener needs to know that something happened, not how often.
    PubSub.sliding<void>(1),
    (hub) =>
      OutboxSignal.of({
        raise: Effect.asVoid(PubSub.publish(hub, undefined)),
        listen: Effect.map(PubSub.subscribe(hub), (queue) => ({
          next: Queue.take(queue),
          clear: Effect.asVoid(Queue.takeAll(queue))
        }))
      })
  )

  static readonly layer: Layer.Layer<OutboxSignal> = Layer.effect(OutboxSignal, OutboxSignal.make)
}
