/**
 * `tlsrpt worker`: every long-running part as one Layer, launched until SIGTERM/SIGINT. The parts
 * supervise themselves (the report schedule and the delivery loop restart or log a failed pass and
 * go on); on a signal runMain interrupts the launch, and closing its scope stops the HTTP server
 * (no new requests), flushes the collector, and interrupts the delivery pass in flight (an aborted
 * attempt is not recorded, so the message stays queued and due), then the process exits 0.
 */
import * as NodePath from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import { Collector, type InvalidOutcome, SessionOutcome, WriterThread } from "@tlsrpt/collector"
import { Data, Effect, Layer, Redacted } from "effect"
import * as Admin from "./Admin.js"
import { sendingBlocker, type WorkerConfig } from "./Config.js"
import * as DataDirLock from "./DataDirLock.js"
import type * as FleetModeModule from "./FleetMode.js"
import type { FleetCluster } from "@tlsrpt/fleet"
import type { Store } from "@tlsrpt/store"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Layers from "./Layers.js"
import { Metrics } from "./Metrics.js"
import * as Secrets from "./Secrets.js"

/**
 * The configured token, else one kept in `<dataDir>/admin-token` (created 0600 on first start). A
 * token file that is too short is replaced, and its mode set to 0600 (writing keeps an existing
 * file's mode); a good one readable by others is warned about, or refused with `strict`.
 */
export const adminToken = (config: WorkerConfig, options: { readonly strict: boolean } = { strict: false }) =>
  Effect.gen(function* () {
    if (config.http.token !== undefined) return config.http.token
    const fs = yield* FileSystem.FileSystem
    const file = NodePath.join(config.dataDir, "admin-token")
    const existing = yield* fs.readFileString(file).pipe(Effect.option)
    if (existing._tag === "Some" && existing.value.trim().length >= 16) {
      yield* Secrets.checkModes([{ key: "http.token", path: file }], options)
      yield* Effect.logInfo(`admin token: read from ${file} (set http.token to choose one)`)
      return Redacted.make(existing.value.trim())
    }
    const token = Admin.generateToken()
    yield* fs.makeDirectory(config.dataDir, { recursive: true })
    yield* fs.writeFileString(file, `${token}\n`, { mode: 0o600 })
    yield* fs.chmod(file, 0o600)
    yield* Effect.logInfo(
      `admin token: ${existing._tag === "Some" ? "too short, replaced" : "generated"} in ${file} (set http.token to choose one)`
    )
    return Redacted.make(token)
  })

const describeTransport = (config: WorkerConfig): string =>
  config.transport.type === "smtp" ? `smtp relay ${new URL(config.transport.url).host}` : `dir ${config.transport.dir}`

/**
 * Fleet mode's runner, its modules (@tlsrpt/fleet, @effect/cluster, @effect/workflow) loaded only
 * when a cluster is configured: on the embedded default they would be some 20 MB of RSS for nothing.
 */
const fleetRunner = <E, R>(
  config: WorkerConfig,
  cluster: FleetCluster.ClusterConfig,
  storeLayer: Layer.Layer<Store.Store | SqlClient.SqlClient, E, R>
): ReturnType<typeof FleetModeModule.runner<E, R>> =>
  Layer.unwrapEffect(
    Effect.promise(() => import("./FleetMode.js")).pipe(Effect.map((m) => m.runner(config, cluster, storeLayer)))
  )

/** Everything the worker runs, on one store. */
export const layer = (config: WorkerConfig, token: Redacted.Redacted<string>) => {
  const storeLayer = Layers.store(config)
  const blocker = sendingBlocker(config)
  const settings = Layer.succeed(Admin.AdminSettings, {
    token,
    status: {
      sending: blocker === undefined,
      reason: blocker?.reason,
      transport: describeTransport(config),
      submitter: config.submitter?.domain.ascii
    }
  })
  // One collector for the datagram socket and POST /api/outcomes; both close before its final flush.
  const collectorLayer = collector(config, { writerThread: true }).pipe(Layer.provide(storeLayer))
  // In fleet mode the page also shows the cluster (runners, shard ownership, last rounds).
  const cluster = config.cluster
  const clusterStatus =
    cluster === undefined
      ? Layer.empty
      : Layer.unwrapEffect(
          Effect.promise(() => import("./FleetMode.js")).pipe(Effect.map((m) => m.adminCluster(cluster)))
        ).pipe(Layer.provide(storeLayer))
  const admin = Admin.layer(config.http.listen).pipe(
    Layer.provide(Layer.mergeAll(storeLayer, Metrics.layer, settings, collectorLayer, clusterStatus))
  )
  return Layer.mergeAll(
    admin,
    Layers.datagramSource(config).pipe(Layer.provideMerge(collectorLayer)),
    Layers.delivery(config, storeLayer, { background: true }),
    config.cluster === undefined ? Layers.schedule(config, storeLayer) : fleetRunner(config, config.cluster, storeLayer)
  )
}

export const run = (config: WorkerConfig, options: { readonly strict: boolean } = { strict: false }) =>
  Effect.gen(function* () {
    // First of all: a second worker on this data directory stops here, having touched nothing.
    yield* DataDirLock.acquire(config.dataDir)
    yield* Secrets.checkModes(dkimFiles(config), options)
    const token = yield* adminToken(config, options)
    if (!Admin.isLoopback(config.http.listen.host))
      yield* Effect.logWarning(
        `admin HTTP listens on ${config.http.listen.host}, not loopback: the API and its bearer token travel in clear text; put a TLS proxy in front of it or listen on 127.0.0.1`
      ).pipe(Effect.annotateLogs({ key: "http.listen" }))
    yield* Effect.logInfo("tlsrpt worker starting").pipe(
      Effect.annotateLogs({
        config: config.configFile ?? "(embedded default)",
        database: config.database,
        transport: describeTransport(config)
      })
    )
    yield* Layer.launch(layer(config, token)).pipe(Effect.onInterrupt(() => Effect.logInfo("tlsrpt worker stopped")))
  }).pipe(Effect.scoped)

/** The DKIM private key files of the configuration, as secrets to check. */
export const dkimFiles = (config: WorkerConfig): ReadonlyArray<Secrets.SecretFile> =>
  config.dkim.map((k, i) => ({ key: `dkim[${i}].privateKeyFile`, path: k.privateKeyFile }))

/** The outcome at `index` (0-based, of the batch) was refused; nothing of the batch was recorded. */
export class OutcomeRefused extends Data.TaggedError("OutcomeRefused")<{
  readonly index: number
  readonly invalid: InvalidOutcome
}> {}

/**
 * The collector (batching, flush fiber, final flush on stop); records nothing when collection is off.
 * `writerThread`: its SQLite writes run on a thread of their own (WriterThread), so the running worker
 * keeps aggregating and reading the datagram socket while a batch is written.
 */
export const collector = (config: WorkerConfig, options: { readonly writerThread?: boolean } = {}) => {
  const layer = Collector.layer({ collect: config.reports.enabled && config.reports.collect })
  return options.writerThread === true && config.database !== ":memory:"
    ? layer.pipe(Layer.provide(WriterThread.layer({ filename: config.database })))
    : layer
}

/**
 * `tlsrpt record`: every outcome is checked before the first is recorded (all or nothing), then they
 * go through the collector, whose final flush writes them in one `addResults` batch per 25,000 keys (`flushRows`).
 */
export const recordOutcomes = (outcomes: ReadonlyArray<SessionOutcome.SessionOutcome>) =>
  Effect.gen(function* () {
    for (const [i, o] of outcomes.entries()) {
      const invalid = SessionOutcome.check(o)
      if (invalid !== undefined) return yield* new OutcomeRefused({ index: i, invalid })
    }
    const c = yield* Collector
    for (const o of outcomes) yield* c.record(o).pipe(Effect.orDie)
    yield* c.flush
    return yield* c.stats
  })
