/**
 * The `cluster` section of a configuration file (docs/design.md#fleet-mode), decoded into what
 * `FleetCluster.runner` takes whole: the address this runner listens on and other runners reach it
 * at, the number of shards (the same on every runner), the shard lease and how long processed
 * messages stay in the cluster tables.
 */
import { HostPort } from "@tlsrpt/core"
import { Schema } from "effect"

// Kept free of @effect/cluster: the worker decodes its config with this module (subpath
// `@tlsrpt/fleet/ClusterConfig`) and loads the cluster only when a `cluster` section is present.
export interface ClusterConfig {
  /** `host:port` other runners reach this one at; it also listens there. */
  readonly runnerAddress: { readonly host: string; readonly port: number }
  /** Shards of the key space; the same on every runner (default 300). */
  readonly shards: number
  /** Seconds a runner holds its shards without refreshing them (default 35, @effect/cluster's). */
  readonly leaseSeconds: number
  /** Days processed messages and their replies stay in the cluster tables (default 7). */
  readonly retainDays: number
}

export const DEFAULT_SHARDS = 300
/** @effect/cluster's own `shardLockExpiration`. */
export const DEFAULT_LEASE_SECONDS = 35
export const LEASE_SECONDS_MIN = 5
export const LEASE_SECONDS_MAX = 600
/** How long the trim keeps processed messages (docs/design.md#fleet-trim). */
export const DEFAULT_RETAIN_DAYS = 7

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

/**
 * How long a runner's PostgreSQL session may sit idle inside a transaction (the store's and the
 * cluster's): a third of the shard lease, so a frozen runner's transactions are ended, and their row
 * locks released, before its lease can expire (at the earliest two thirds of a lease after it froze:
 * it refreshes every third). Otherwise the runner that takes its shards blocks on those locks: the
 * cluster's reset of the shards' messages waits on them, times out, and the messages the frozen runner
 * had read stay hidden for ten minutes (docs/design.md#fleet-faults).
 */
export const idleInTransactionMillis = (config: Pick<ClusterConfig, "leaseSeconds">): number =>
  Math.floor((config.leaseSeconds * 1000) / 3)

/** The section with its defaults (shards and lease: @effect/cluster's own). */
export const resolve = (section: Section): ClusterConfig => ({
  runnerAddress: section.runnerAddress,
  shards: section.shards ?? DEFAULT_SHARDS,
  leaseSeconds: section.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
  retainDays: section.retainDays ?? DEFAULT_RETAIN_DAYS
})
