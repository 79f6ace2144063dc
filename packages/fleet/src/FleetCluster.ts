/**
 * Joining the cluster (docs/design.md#fleet-mode): a runner process serves the fleet's entities over
 * a socket on its `runnerAddress` and keeps its messages, replies and runner registrations in the
 * shared SQL database; a client process (the CLI) only sends messages and reads replies.
 */
import { RunnerAddress, type ShardingConfig } from "@effect/cluster"
import { NodeClusterSocket } from "@effect/platform-node"
import type { ReporterConfig } from "@tlsrpt/reporter"
import { Duration, Layer, Option } from "effect"
import * as ReportKey from "./ReportKey.js"
import * as ReportRound from "./ReportRound.js"

/** The `cluster` section of the configuration (a stable contract). */
import type { ClusterConfig } from "./ClusterConfig.js"

export type { ClusterConfig } from "./ClusterConfig.js"
export { DEFAULT_SHARDS } from "./ClusterConfig.js"

/** Parses `host:port` or `[v6]:port`. */
export const parseRunnerAddress = (text: string): { host: string; port: number } | undefined => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim())
  if (m === null) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: m[1] ?? m[2] ?? "", port }
}

/** Cluster timings: how fast a dead runner's shards move and stored messages are picked up. */
export interface ClusterTuning {
  /** How often a runner looks for stored messages it has not seen (default 2 s). */
  readonly messagePollInterval?: ShardingConfig.ShardingConfig["Type"]["entityMessagePollInterval"] | undefined
  /** A runner that has not refreshed its shard locks for this long loses them (default 35 s). */
  readonly shardLockExpiration?: ShardingConfig.ShardingConfig["Type"]["shardLockExpiration"] | undefined
}

const sharding = (shards: number, tuning: ClusterTuning) => ({
  shardsPerGroup: shards,
  entityMessagePollInterval: tuning.messagePollInterval ?? "2 seconds",
  // Shard locks are leases in the cluster_locks table, not PostgreSQL advisory locks: an advisory lock
  // lives as long as its session, and the session of a runner that is frozen or cut off by the network
  // stays open on the server (TCP keepalive: hours), so its shards would never move. A lease expires
  // after `shardLockExpiration` whatever happened to its holder (docs/design.md#fleet-faults).
  shardLockDisableAdvisory: true,
  ...(tuning.shardLockExpiration === undefined
    ? {}
    : {
        shardLockExpiration: tuning.shardLockExpiration,
        // refreshed three times per lease, so one slow refresh does not lose it
        shardLockRefreshInterval: Duration.divide(Duration.decode(tuning.shardLockExpiration), 3).pipe(
          Option.getOrElse(() => Duration.seconds(1))
        )
      })
})

/** This process as a runner: socket server on `runnerAddress`, storage in the SqlClient's database. */
export const runner = (config: ClusterConfig, tuning: ClusterTuning = {}) =>
  NodeClusterSocket.layer({
    storage: "sql",
    shardingConfig: {
      ...sharding(config.shards, tuning),
      runnerAddress: Option.some(RunnerAddress.make(config.runnerAddress.host, config.runnerAddress.port))
    }
  })

/** This process as a client only: sends messages to the runners and waits for their replies. */
export const client = (shards: number, tuning: ClusterTuning = {}) =>
  NodeClusterSocket.layer({ storage: "sql", clientOnly: true, shardingConfig: sharding(shards, tuning) })

/** The fleet's entities and the daily schedule; needs a runner (or SingleRunner) and the stages. */
export const entities = (config: ReporterConfig, options: ReportRound.RoundOptions = {}) =>
  Layer.mergeAll(ReportKey.layer(config), ReportRound.layer(config, options), ReportRound.schedule(config))
