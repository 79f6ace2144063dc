/**
 * The `cluster` section of a configuration file (docs/design.md#fleet-mode), decoded into what
 * `FleetCluster.runner` takes whole: the address this runner listens on and other runners reach it
 * at, and the number of shards (the same on every runner).
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
}

export const DEFAULT_SHARDS = 300

export const schema = Schema.Struct({
  runnerAddress: HostPort.schema(),
  shards: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000)))
})
export type Section = typeof schema.Type

/** The section with its default (`DEFAULT_SHARDS`, @effect/cluster's own). */
export const resolve = (section: Section): ClusterConfig => ({
  runnerAddress: section.runnerAddress,
  shards: section.shards ?? DEFAULT_SHARDS
})
