/**
 * The worker in fleet mode (docs/design.md#fleet-mode), when the config has a `cluster` section: the
 * worker joins the cluster as a runner of the fleet's entities instead of running the plain daily
 * schedule; `send` asks the cluster for a round and waits for its deliveries; `cluster status` reads
 * the cluster tables. The cluster's tables live in the store's database.
 */
import { randomUUID } from "node:crypto"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Day } from "@tlsrpt/core"
import { ClusterStatus, ClusterTrim, FleetCluster, ReportRound } from "@tlsrpt/fleet"
import { Outbox, type OutboxMessage, type Store } from "@tlsrpt/store"
import { Effect, Layer } from "effect"
import { AdminCluster } from "./Admin.js"
import { ConfigError, sendingBlocker, type WorkerConfig } from "./Config.js"
import * as Layers from "./Layers.js"

/**
 * The SqlClient the cluster's tables are read through: on PostgreSQL a client of their own on the
 * store's database (`FleetCluster.sqlPg`: the store's client reads BIGINT ids as numbers); on SQLite
 * the store's (one file, one writer).
 */
const clusterSql = <E, R>(
  config: WorkerConfig,
  storeLayer: Layer.Layer<Store.Store | SqlClient.SqlClient, E, R>
): Layer.Layer<SqlClient.SqlClient, unknown, R> =>
  config.databaseConfig.type === "postgres"
    ? FleetCluster.sqlPg(
        config.databaseConfig.url,
        config.cluster ?? { leaseSeconds: FleetCluster.DEFAULT_LEASE_SECONDS }
      )
    : storeLayer

/** The runner: the fleet's entities, the daily cron and the trim of the cluster tables, on the store's database. */
export const runner = <E, R>(
  config: WorkerConfig,
  cluster: FleetCluster.ClusterConfig,
  storeLayer: Layer.Layer<Store.Store | SqlClient.SqlClient, E, R>
) => {
  const blocker = sendingBlocker(config)
  if (blocker !== undefined) {
    return Layer.effectDiscard(
      Effect.logWarning(`reports: not joining the cluster: ${blocker.reason}`).pipe(
        Effect.annotateLogs({ key: blocker.key })
      )
    )
  }
  const reporterConfig = Layers.reporterConfig(config, { retries: true })
  const sql = clusterSql(config, storeLayer)
  const entities = FleetCluster.entities(reporterConfig).pipe(Layer.provide(FleetCluster.runner(cluster)))
  // the trim is built after the runner, whose storage creates the cluster tables on a fresh database
  return ClusterTrim.layer(cluster.retainDays).pipe(
    Layer.provideMerge(entities),
    Layer.provide(sql),
    Layer.provide(Layer.mergeAll(storeLayer, Layers.lookup(config, { cached: true }), Layers.reportMail(config))),
    Layer.tap(() =>
      Effect.logInfo(
        `joined the cluster as ${cluster.runnerAddress.host}:${cluster.runnerAddress.port} (${cluster.shards} shards, ${cluster.leaseSeconds} s lease)`
      )
    )
  )
}

/** The admin page's cluster section: the status `tlsrpt cluster status` shows, read from the store's database. */
export const adminCluster = (cluster: FleetCluster.ClusterConfig) =>
  Layer.effect(
    AdminCluster,
    Effect.map(SqlClient.SqlClient, (sql) => ({
      status: ClusterStatus.read({ shards: cluster.shards, lockExpirationSeconds: cluster.leaseSeconds }).pipe(
        Effect.provideService(SqlClient.SqlClient, sql)
      )
    }))
  )

/** A cluster client on the store's database, for the CLI. */
export const client = (cluster: FleetCluster.ClusterConfig, config: WorkerConfig) => {
  const store = Layers.store(config)
  return FleetCluster.client(cluster.shards).pipe(Layer.provide(clusterSql(config, store)), Layer.provideMerge(store))
}

const settled = (m: OutboxMessage) => m.status !== "queued"

/**
 * `tlsrpt send --day D` with a cluster: the round runs on the runners (a fresh request id, so it runs
 * even if the daily round of D already ran), then this waits until every message of its reports is
 * delivered or failed for good, and returns the same shape as the local `send`.
 */
export const send = (config: WorkerConfig, day: Day.Day, options: { readonly pace: boolean }) =>
  Effect.gen(function* () {
    const cluster = config.cluster
    if (cluster === undefined) return yield* new ConfigError({ key: "cluster", reason: "not configured" })
    return yield* Effect.gen(function* () {
      const round = yield* ReportRound.request(
        new ReportRound.RunRound({ id: `send:${randomUUID()}`, day, pace: options.pace })
      )
      const outbox = yield* Outbox
      const sent = new Set(round.keys.filter((k) => k.queued > 0).map((k) => `${k.policyDomain} ${k.day}`))
      const mine = Effect.map(outbox.list(), (all) => all.filter((m) => sent.has(`${m.policyDomain} ${m.day}`)))
      let messages = yield* mine
      while (!messages.every(settled)) {
        yield* Effect.sleep("1 second")
        messages = yield* mine
      }
      const pass = {
        delivered: messages.filter((m) => m.status === "delivered").length,
        retried: 0,
        failed: messages.filter((m) => m.status === "failed").length
      }
      return { round, pass }
    }).pipe(Effect.provide(client(cluster, config)))
  })
