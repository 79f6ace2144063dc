import { assert, describe, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import * as ClusterConfig from "../src/ClusterConfig.js"
import { DEFAULT_SHARDS } from "../src/FleetCluster.js"

const decode = Schema.decodeUnknownEither(ClusterConfig.schema, { onExcessProperty: "error" })
const firstPath = (json: unknown) => {
  const decoded = decode(json)
  assert.isTrue(Either.isLeft(decoded), "expected a decoding error")
  return ParseResult.ArrayFormatter.formatErrorSync((decoded as Either.Left<ParseResult.ParseError, unknown>).left)[0]!
    .path
}

describe("ClusterConfig", () => {
  it("the runner's address as host:port; shards default to DEFAULT_SHARDS", () => {
    assert.deepStrictEqual(ClusterConfig.resolve(Either.getOrThrow(decode({ runnerAddress: "10.0.0.5:34431" }))), {
      runnerAddress: { host: "10.0.0.5", port: 34431 },
      shards: DEFAULT_SHARDS
    })
    assert.deepStrictEqual(
      ClusterConfig.resolve(Either.getOrThrow(decode({ runnerAddress: "[::1]:34431", shards: 16 }))),
      { runnerAddress: { host: "::1", port: 34431 }, shards: 16 }
    )
  })

  it("the address is required and needs a port; shards 1 to 10,000; unknown keys are refused", () => {
    assert.deepStrictEqual(firstPath({}), ["runnerAddress"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1" }), ["runnerAddress"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", shards: 0 }), ["shards"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", shards: 10_001 }), ["shards"])
    assert.deepStrictEqual(firstPath({ runnerAddress: "runner1:1", shard: 3 }), ["shard"])
  })
})
