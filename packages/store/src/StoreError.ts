/**
 * The store's errors, shared by its ports (`ResultStore`, `SuppressionList`, `Outbox`) and their SQL
 * implementations.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Data, Effect } from "effect"

export class StoreError extends Data.TaggedError("StoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `result store: ${this.operation} failed: ${describe(this.cause)}`
  }
}

/** An SqlError says only "Failed to execute statement"; the driver's reason is in its cause. */
const describe = (cause: unknown): string => {
  const parts: Array<string> = []
  for (let c = cause, depth = 0; c !== undefined && c !== null && depth < 4; depth++) {
    const message = typeof c === "object" && "message" in c ? String(c.message) : String(c)
    if (message !== "" && !parts.includes(message)) parts.push(message)
    c = typeof c === "object" && "cause" in c ? c.cause : undefined
  }
  return parts.join(": ")
}

export class InvalidAddress extends Data.TaggedError("InvalidAddress")<{
  readonly address: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid address ${JSON.stringify(this.address)}: ${this.reason}`
  }
}

/** Turns the driver's `SqlError` into a `StoreError` naming the operation; other errors pass. */
export const fromSqlError =
  (operation: string) =>
  <A, E, R>(self: Effect.Effect<A, E | SqlError, R>): Effect.Effect<A, Exclude<E, SqlError> | StoreError, R> =>
    Effect.catchIf(
      self,
      (e): e is SqlError => e instanceof SqlError,
      (cause) => Effect.fail(new StoreError({ operation, cause }))
    ) as Effect.Effect<A, Exclude<E, SqlError> | StoreError, R>
