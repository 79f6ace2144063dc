import { assert, describe, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import * as ClusterConfig from "../src/ClusterConfig.js"
import { DEFAULT_RETAIN_DAYS } from "../src/ClusterTrim.js"
import { DEFAULT_LEASE_SECONDS, DEFAULT_SHARDS } from "../src/FleetCluster.js"

const decode = Schema.decodeUnknownEither(ClusterConfig.schema, { onExcessProperty: "error" })
const firstPath = (json: unknown) => {
  const decoded = decode(json)
  assert.isTrue(Either.isLeft(decoded), "expected a decoding error")
  return ParseResult.ArrayFormatter.formatErrorSync((decoded as Either.Left<ParseResult.ParseError, unknown>).left)[0]!
    .path
}

describe("ClusterConfig", () => {
  it("the runner's address as host:port; shards, lease and retention default to @effect/cluster's and 7 days", () => {
    assert.deepStrictEqual(ClusterConfig.resolve(Either.getOrThrow(decode({ runnerAddress: "10.0.0.5:34431" }))), {
      runnerAddress: { host: "10.0.0.5", port: 34431 },
      shards: DEFAULT_SHARDS,
      leaseSeconds: DEFAULT_LEASE_SECONDS,
      retainDays: DEFAULT_RETAIN_DAYS
    })
    assert.strictEqual(DEFAULT_LEASE_SECONDS, 35)
    assert.strictEqual(DEFAULT_RETAIN_DAYS, 7)
    assert.deepStrictEqual(
      ClusterConfig.resolve(
        Either.getOrThrow(decode({ runnerAddress: "[::1]:34431", shards: 16, leaseSeconds: 20, retainDays: 30 }))
      ),
      { runnerAddress: { host: "::1", port: 34431 }, shards: 16, leaseSeconds: 20, retainDays: 30 }
    )
  })

  it("the lease is whole seconds from 5 to 600; the retention whole days from 1", () => {
    for (const leaseSeconds of [4, 601, 10.5, "35"]) {
      assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", leaseSeconds }), ["leaseSeconds"])
    }
    for (const retainDays of [0, -1, 1.5, 3651]) {
      assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", retainDays }), ["retainDays"])
    }
    assert.isTrue(Either.isRight(decode({ runnerAddress: "runner1:1", leaseSeconds: 5, retainDays: 1 })))
    assert.isTrue(Either.isRight(decode({ runnerAddress: "runner1:1", leaseSeconds: 600, retainDays: 3650 })))
  })

  it("the address is required and needs a port; shards 1 to 10,000; unknown keys are refused", () => {
    assert.deepStrictEqual(firstPath({}), ["runnerAddress"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1" }), ["runnerAddress"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", shards: 0 }), ["shards"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", shards: 10_001 }), ["shards"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", shard: 3 }), ["shard"])
  })
})
