/**
 * The `cluster` section of a configuration file (docs/design.md#fleet-mode), decoded into what
 * `FleetCluster.runner` takes whole: the address this runner listens on and other runners reach it
 * at, the number of shards (the same on every runner), the shard lease and how long processed
 * messages stay in the cluster tables.
 */
import { HostPort } from "@tlsrpt/core"
import { Schema } from "effect"
import { DEFAULT_RETAIN_DAYS } from "./ClusterTrim.js"
import {
  type ClusterConfig,
  DEFAULT_LEASE_SECONDS,
  DEFAULT_SHARDS,
  LEASE_SECONDS_MAX,
  LEASE_SECONDS_MIN
} from "./FleetCluster.js"

export const schema = Schema.Struct({
  runnerAddress: HostPort.schema(),
  shards: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000))),
  // the shard lease in cluster_locks (docs/design.md#fleet-faults): shorter moves a dead runner's
  // shards sooner, but a runner whose refresh is late by a third of it loses them
  leaseSeconds: Schema.optional(Schema.Int.pipe(Schema.between(LEASE_SECONDS_MIN, LEASE_SECONDS_MAX))),
  // docs/design.md#fleet-trim: at least a day, so no waiting client's reply is ever trimmed
  retainDays: Schema.optional(Schema.Int.pipe(Schema.between(1, 3650)))
})
export type Section = typeof schema.Type

/** The section with its defaults (shards and lease: @effect/cluster's own). */
export const resolve = (section: Section): ClusterConfig => ({
  runnerAddress: section.runnerAddress,
  shards: section.shards ?? DEFAULT_SHARDS,
  leaseSeconds: section.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
  retainDays: section.retainDays ?? DEFAULT_RETAIN_DAYS
})
