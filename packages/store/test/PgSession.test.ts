/**
 * `PgSession`: the settings every PostgreSQL session of the store starts with. A process frozen inside
 * a transaction (SIGSTOP, a paused VM) keeps its connection open and its row locks held; the server
 * ends its session after `idleInTransaction`, so another writer of the same rows goes on
 * (docs/design.md#fleet-faults).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { PgTestDatabase } from "@tlsrpt/testkit"
import { Context, Deferred, Effect, Exit, Fiber, Layer } from "effect"
import * as PgSession from "../src/pg/PgSession.js"
import { ResultStore } from "../src/ResultStore.js"
import * as Store from "../src/Store.js"
import { seedDay, seedRows } from "./Seed.js"

describe("PgSession.url", () => {
  it("appends the timeout to the URL's options, keeping what they held", () => {
    const url = new URL(
      PgSession.url("postgres://u@127.0.0.1:5432/db?options=-c%20search_path%3Ds1&sslmode=disable", {
        idleInTransaction: "5 seconds"
      })
    )
    assert.strictEqual(url.searchParams.get("options"), "-c search_path=s1 -c idle_in_transaction_session_timeout=5000")
    assert.strictEqual(url.searchParams.get("sslmode"), "disable")
    assert.strictEqual(
      new URL(PgSession.url("postgres://u@h/db", { idleInTransaction: "1 minute" })).searchParams.get("options"),
      "-c idle_in_transaction_session_timeout=60000"
    )
  })
})

describe.skipIf(!PgTestDatabase.available())("Store.layerPg sessions", () => {
  it.scopedLive(
    "a writer frozen inside its transaction loses its session, and its row locks, after idleInTransaction",
    () =>
      Effect.gen(function* () {
        const url = yield* PgTestDatabase.fresh
        const rcpt = seedRows[0]!.recipientDomain.ascii
        yield* Effect.flatMap(ResultStore, (s) => s.addResults(seedRows)).pipe(Effect.provide(Store.layerPg({ url })))
        // two processes' pools, open until the end of the test
        const client = (layer: ReturnType<typeof Store.layerPg>) =>
          Effect.map(Layer.build(layer), Context.get(SqlClient.SqlClient))
        const frozen = yield* client(Store.layerPg({ url, maxConnections: 1, idleInTransaction: "1 second" }))
        const other = yield* client(Store.layerPg({ url }))
        const locked = yield* Deferred.make<void>()
        const otherDone = yield* Deferred.make<void>()
        // The frozen writer: locks the key's rows, then sends nothing until the other writer is through.
        const stuck = yield* frozen
          .withTransaction(
            frozen`UPDATE results SET sent_to_recipient_domain = 1 WHERE recipient_domain = ${rcpt} AND day = ${seedDay}`.pipe(
              Effect.zipRight(Deferred.succeed(locked, undefined)),
              Effect.zipRight(Deferred.await(otherDone)),
              Effect.zipRight(frozen`SELECT 1`)
            )
          )
          .pipe(Effect.exit, Effect.fork)
        yield* Deferred.await(locked)
        // Waits on the frozen writer's row locks until the server ends its session (without the
        // timeout: forever, and the test times out).
        const updated = yield* other<{ id: number }>`UPDATE results SET sent_to_policy_domain = 1
        WHERE recipient_domain = ${rcpt} AND day = ${seedDay} RETURNING id`
        yield* Deferred.succeed(otherDone, undefined)
        assert.isAbove(updated.length, 0)
        // the frozen writer's transaction was rolled back with its session: nothing of it committed
        const exit = yield* Fiber.join(stuck)
        assert.isTrue(Exit.isFailure(exit), String(exit))
        const rows = yield* other<{ n: number }>`SELECT count(*)::int AS n FROM results
        WHERE recipient_domain = ${rcpt} AND day = ${seedDay} AND sent_to_recipient_domain = 1`
        assert.strictEqual(rows[0]!.n, 0)
      })
  )
})
