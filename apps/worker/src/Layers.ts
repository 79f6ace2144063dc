/**
 * Layer composition from the validated configuration: the only place that turns config into the
 * packages' Layers (ARCHITECTURE.md). Each function returns a Layer built once per command; layers
 * that several services share (the store) are passed in so one instance is memoised.
 */
import { type Collector, DatagramSource, SocketConfig } from "@tlsrpt/collector"
import { Dns, TlsrptLookup } from "@tlsrpt/dns"
import * as ClusterConfig from "@tlsrpt/fleet/ClusterConfig"
import { Delivery, defaultPoolSize, ReportMail, Transport } from "@tlsrpt/mail"
import type * as SqlClient from "@effect/sql/SqlClient"
import { type Reporter, type ReporterConfig, ReporterLive, ReporterSchedule } from "@tlsrpt/reporter"
import { Store, StoreError } from "@tlsrpt/store"
import { Data, Effect, Layer } from "effect"
import { ConfigError, sendingBlocker, type WorkerConfig } from "./Config.js"

/** A store failure, naming the database file (a full disk, a read-only or corrupt file are the operator's). */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly file: string
  readonly cause: StoreError
}> {
  override get message(): string {
    const message = this.cause.message
    return message.includes(this.file) ? message : `database ${this.file}: ${message}`
  }
}

/** Wraps a `StoreError` into a `DatabaseError` for the config's file; other errors pass through. */
export const nameDatabase =
  (config: WorkerConfig) =>
  <E>(e: E): E | DatabaseError =>
    e instanceof StoreError ? new DatabaseError({ file: config.database, cause: e }) : e

/**
 * The store (`database`: a SQLite file, or PostgreSQL), migrated on open. In a cluster, a session idle
 * inside a transaction for a third of the lease is ended (docs/design.md#fleet-faults).
 */
export const store = (config: WorkerConfig): Layer.Layer<Store.Store | SqlClient.SqlClient, StoreError> =>
  Store.layerConfig(config.databaseConfig, {
    idleInTransaction: config.cluster === undefined ? undefined : ClusterConfig.idleInTransactionMillis(config.cluster)
  })

/** TXT lookups on the configured servers, or the system's resolvers when none are given. */
export const dns = (config: WorkerConfig): Layer.Layer<Dns> =>
  // The config already refused anything but IP addresses in dns.servers (exit 2).
  Dns.layer(config.dns).pipe(Layer.orDie)

/** The TLSRPT lookup; the long-running worker keeps answers up to their TTL. */
export const lookup = (config: WorkerConfig, options: { readonly cached: boolean }): Layer.Layer<TlsrptLookup> =>
  (options.cached ? TlsrptLookup.layerCached() : TlsrptLookup.layer).pipe(Layer.provide(dns(config)))

/** The mail transport: an SMTP relay or a folder; https destinations are POSTed unless `reports.https` is off. */
export const transport = (config: WorkerConfig) =>
  Transport.layerConfig(config.transport, {
    https: config.reports.https,
    httpsAllowPrivate: config.delivery.httpsAllowPrivate
  }).pipe(Layer.mapError((e) => new ConfigError({ key: "transport.url", reason: e.reason })))

/** Report composition and DKIM signing; fails (naming the key) when sending is not configured. */
export const reportMail = (config: WorkerConfig) => {
  const blocker = sendingBlocker(config)
  if (blocker !== undefined || config.submitter === undefined)
    return Layer.fail(
      new ConfigError({ key: blocker?.key ?? "submitter", reason: blocker?.reason ?? "not configured" })
    )
  // composed and signed on one thread per core, so a round uses all of them (ComposePool)
  return ReportMail.layer({ submitter: config.submitter, dkim: config.dkimKeys, workers: defaultPoolSize() }).pipe(
    Layer.mapError((e) => new ConfigError({ key: "dkim", reason: e.message }))
  )
}

/**
 * The reporter's settings from `reports.*`. `send` (the CLI) does not wait for in-round retries of
 * temporary DNS errors: those keys stay stored for the next round (the issue's `send` rule).
 */
export const reporterConfig = (config: WorkerConfig, options: { readonly retries: boolean }): ReporterConfig => {
  const { enabled: _enabled, collect: _collect, ...reporter } = config.reports
  return options.retries ? reporter : { ...reporter, temporaryRetries: [] }
}

/** `Reporter` on the given store, with lookup and mail built from the config. */
export const reporter = <E, R>(
  config: WorkerConfig,
  storeLayer: Layer.Layer<Store.Store, E, R>,
  options: { readonly retries: boolean; readonly cachedLookup: boolean }
): Layer.Layer<Reporter, E | ConfigError, R> =>
  ReporterLive.layer(reporterConfig(config, options)).pipe(
    Layer.provide(Layer.mergeAll(storeLayer, lookup(config, { cached: options.cachedLookup }), reportMail(config)))
  )

/** Outbox delivery: `runOnce` only (CLI) or with its polling fiber (worker). */
export const delivery = <E, R>(
  config: WorkerConfig,
  storeLayer: Layer.Layer<Store.Store, E, R>,
  options: { readonly background: boolean }
) =>
  (options.background
    ? Delivery.layer({ schedule: config.delivery })
    : Delivery.layerManual({ schedule: config.delivery })
  ).pipe(Layer.provide(Layer.mergeAll(storeLayer, transport(config))))

/**
 * The daily report loop when sending is possible; otherwise one clear log line and nothing else
 * (the embedded default refuses to send until a submitter and a DKIM key are configured).
 */
export const schedule = <E, R>(config: WorkerConfig, storeLayer: Layer.Layer<Store.Store, E, R>) => {
  const blocker = sendingBlocker(config)
  if (blocker !== undefined) {
    return Layer.effectDiscard(
      Effect.logWarning(`reports: not sending: ${blocker.reason}`).pipe(Effect.annotateLogs({ key: blocker.key }))
    )
  }
  // The schedule reads and records the reported days in the store (docs/design.md#schedule-catch-up).
  return ReporterSchedule.layer(reporterConfig(config, { retries: true })).pipe(
    Layer.provide(Layer.merge(reporter(config, storeLayer, { retries: true, cachedLookup: true }), storeLayer))
  )
}

/**
 * The libtlsrpt datagram socket (`collector.socket`), feeding the given collector; nothing when it is
 * off. A socket another collector holds is refused at start, naming the key.
 */
export const datagramSource = (config: WorkerConfig): Layer.Layer<never, ConfigError, Collector> => {
  const options = SocketConfig.sourceConfig(config.collector)
  if (options === undefined) return Layer.empty
  const source = DatagramSource.layer(options)
  return Layer.effectDiscard(Effect.void).pipe(
    Layer.provide(source),
    Layer.mapError((e) => new ConfigError({ key: "collector.socket", reason: e.message }))
  )
}
