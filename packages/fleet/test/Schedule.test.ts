import { SingleRunner } from "@effect/cluster"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Transport } from "@tlsrpt/mail"
import { defaultConfig } from "@tlsrpt/reporter"
import { Store } from "@tlsrpt/store"
import { Duration, Effect, Layer, TestClock } from "effect"
import { FleetCluster } from "../src/index.js"
import { dkimPem, lookupLayer, mailLayer } from "./FleetEnv.js"

const config = {
  ...defaultConfig,
  https: false,
  temporaryRetries: [],
  jitterMin: Duration.zero,
  jitterMax: Duration.zero
}

/** The round requests stored in the cluster tables (payload ids). */
const requested = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ payload: string }>`SELECT payload FROM cluster_messages WHERE entity_type = 'ReportRound'`
  return rows.map((r) => (JSON.parse(r.payload) as { id: string }).id).sort()
})

describe("the fleet's daily schedule (docs/design.md#fleet-round) on SingleRunner and TestClock", () => {
  it.scoped("a round for the day that ended is requested at start-up, and again after 00:00 UTC", () =>
    Effect.gen(function* () {
      // cluster + TestClock works for seconds only: start two seconds before midnight
      yield* TestClock.setTime(Date.UTC(2025, 0, 9, 23, 59, 58))
      const pair = yield* dkimPem
      const stages = Layer.mergeAll(
        Store.layerMemory,
        lookupLayer(1),
        mailLayer(pair.privateKeyPem),
        Transport.layerTest()
      )
      yield* Effect.gen(function* () {
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* requested, ["daily:2025-01-08"])
        for (let i = 0; i < 15; i++) yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* requested, ["daily:2025-01-08", "daily:2025-01-09"])
      }).pipe(
        Effect.provide(
          FleetCluster.entities(config).pipe(
            Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
            Layer.provideMerge(stages)
          )
        )
      )
    })
  )
})
