/** `tlsrpt cluster status [--json]`: the cluster's runners, shard ownership and last rounds (docs/scaling.md). */
import * as Command from "@effect/cli/Command"
import { Console, Effect } from "effect"
import * as Config from "../Config.js"
import * as Layers from "../Layers.js"
import { configOption, jsonOption, loadConfig, printJson } from "./Root.js"

const status = Command.make("status", { config: configOption, json: jsonOption }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    // @tlsrpt/fleet is loaded by the commands that use it only (see Worker.ts)
    const { ClusterStatus, FleetCluster } = yield* Effect.promise(() => import("@tlsrpt/fleet"))
    const status = yield* ClusterStatus.read({
      shards: config.cluster?.shards ?? Config.DEFAULT_SHARDS,
      lockExpirationSeconds: config.cluster?.leaseSeconds ?? FleetCluster.DEFAULT_LEASE_SECONDS
    }).pipe(Effect.provide(Layers.store(config)))
    if (args.json) return yield* printJson(status)
    if (config.cluster === undefined) yield* Console.log("no cluster configured: this worker runs as one process")
    yield* Console.log(ClusterStatus.format(status))
  })
).pipe(Command.withDescription("Show the cluster's runners, shard ownership and the last rounds"))

export const command = Command.make("cluster").pipe(
  Command.withDescription("Fleet mode (the cluster section of the config)"),
  Command.withSubcommands([status])
)
