/**
 * Joining the cluster (docs/design.md#fleet-mode): a runner process serves the fleet's entities over
 * a socket on its `runnerAddress` and keeps its messages, replies and runner registrations in the
 * shared SQL database; a client process (the CLI) only sends messages and reads replies.
 */
import {
  Message,
  MessageStorage,
  RunnerAddress,
  ShardingConfig,
  SqlMessageStorage,
  SqlRunnerStorage
} from "@effect/cluster"
import { NodeClusterSocket } from "@effect/platform-node"
import type { Rpc } from "@effect/rpc"
import { PgClient } from "@effect/sql-pg"
import type { ReporterConfig } from "@tlsrpt/reporter"
import { PgSession } from "@tlsrpt/store"
import { Duration, Effect, Layer, Option, Redacted, Schedule } from "effect"
import * as ReportKey from "./ReportKey.js"
import * as ReportRound from "./ReportRound.js"

/** The `cluster` section of the configuration (a stable contract). */
import { type ClusterConfig, DEFAULT_LEASE_SECONDS, idleInTransactionMillis } from "./ClusterConfig.js"

export type { ClusterConfig } from "./ClusterConfig.js"
export {
  DEFAULT_LEASE_SECONDS,
  idleInTransactionMillis,
  DEFAULT_SHARDS,
  LEASE_SECONDS_MAX,
  LEASE_SECONDS_MIN
} from "./ClusterConfig.js"

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
}

const sharding = (shards: number, leaseSeconds: number, tuning: ClusterTuning) => ({
  shardsPerGroup: shards,
  entityMessagePollInterval: tuning.messagePollInterval ?? "2 seconds",
  // Shard locks are leases in the cluster_locks table, not PostgreSQL advisory locks: an advisory lock
  // lives as long as its session, and the session of a runner that is frozen or cut off by the network
  // stays open on the server (TCP keepalive: hours), so its shards would never move. A lease expires
  // after `shardLockExpiration` whatever happened to its holder (docs/design.md#fleet-faults).
  shardLockDisableAdvisory: true,
  shardLockExpiration: Duration.seconds(leaseSeconds),
  // refreshed three times per lease, so one slow refresh does not lose it
  shardLockRefreshInterval: Duration.millis(Math.floor((leaseSeconds * 1000) / 3))
})

/** Saving a reply again for about two minutes: longer than a database restart (docs/design.md#fleet-faults). */
const replyRetries = Schedule.exponential("200 millis").pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.intersect(Schedule.recurs(30))
)

/**
 * The SQLSTATE under a storage error, if any: class 23 (a constraint, e.g. a reply another runner
 * saved first, after this one was frozen) fails the same way every time, so it is not tried again.
 */
const sqlState = (e: unknown): string | undefined => {
  for (let c = e, depth = 0; typeof c === "object" && c !== null && depth < 4; depth++) {
    if ("code" in c && typeof c.code === "string") return c.code
    c = "cause" in c ? c.cause : undefined
  }
  return undefined
}

const savedAgain = <A, E extends { readonly _tag: string }, R>(save: Effect.Effect<A, E, R>) =>
  save.pipe(
    Effect.retry({
      schedule: replyRetries.pipe(
        Schedule.tapInput((e: E) => Effect.logWarning("saving a reply failed; saving it again", e))
      ),
      while: (e) => e._tag === "PersistenceError" && !(sqlState(e)?.startsWith("23") ?? false)
    })
  )

/** Requests read from storage whose `respond` (their reply's save) is `savedAgain`. */
const respondingAgain = <R extends Rpc.Any>(messages: Array<Message.Incoming<R>>): Array<Message.Incoming<R>> =>
  messages.map((m) =>
    m._tag === "IncomingRequest"
      ? new Message.IncomingRequest<R>({
          envelope: m.envelope,
          lastSentReply: m.lastSentReply,
          respond: (reply) => savedAgain(m.respond(reply))
        })
      : m
  )

/**
 * `storage` with one change: a reply that cannot be saved (`PersistenceError`: the database is
 * unreachable) is saved again, for about two minutes. @effect/cluster tries four times in 800 ms and
 * then gives it up, while the request stays "in progress" on its runner: nobody runs it again and its
 * caller (the round asking a key) waits forever. A PostgreSQL restart takes seconds. A request read
 * from storage saves its reply through its own `respond`, not `saveReply`: both are wrapped
 * (docs/design.md#fleet-faults).
 */
export const savingRepliesAgain = (
  storage: MessageStorage.MessageStorage["Type"]
): MessageStorage.MessageStorage["Type"] =>
  MessageStorage.MessageStorage.of({
    ...storage,
    saveReply: (reply) => savedAgain(storage.saveReply(reply)),
    unprocessedMessages: (shardIds) => Effect.map(storage.unprocessedMessages(shardIds), respondingAgain),
    unprocessedMessagesById: (ids) => Effect.map(storage.unprocessedMessagesById(ids), respondingAgain)
  })

/** The cluster's tables in the SqlClient's database: @effect/cluster's SQL storage, `savingRepliesAgain`. */
const storage = Layer.effect(
  MessageStorage.MessageStorage,
  Effect.map(MessageStorage.MessageStorage, savingRepliesAgain)
).pipe(Layer.provide(SqlMessageStorage.layer), Layer.merge(SqlRunnerStorage.layer), Layer.orDie)

/** This process as a runner: socket server on `runnerAddress`, storage in the SqlClient's database. */
export const runner = (config: ClusterConfig, tuning: ClusterTuning = {}) => {
  const shardingConfig = {
    ...sharding(config.shards, config.leaseSeconds, tuning),
    runnerAddress: Option.some(RunnerAddress.make(config.runnerAddress.host, config.runnerAddress.port))
  }
  return NodeClusterSocket.layer({ storage: "byo", shardingConfig }).pipe(
    Layer.provideMerge(storage),
    Layer.provide(ShardingConfig.layerFromEnv(shardingConfig))
  )
}

/** This process as a client only: sends messages to the runners and waits for their replies. */
export const client = (shards: number, tuning: ClusterTuning = {}) =>
  NodeClusterSocket.layer({
    storage: "sql",
    clientOnly: true,
    // a client holds no shards: the lease does not matter to it
    shardingConfig: sharding(shards, DEFAULT_LEASE_SECONDS, tuning)
  })

/**
 * The cluster's own connections to a PostgreSQL store's database. Its message and reply ids are
 * snowflakes, BIGINTs beyond 2^53: read through the store's client, which reads BIGINT as a number,
 * they would lose their low bits and no reply would match its request. This client reads them as
 * strings, as @effect/cluster expects (docs/design.md#fleet-mode). Its sessions end a transaction
 * left idle for a third of the lease (`idleInTransactionMillis`, docs/design.md#fleet-faults).
 */
export const sqlPg = (url: Redacted.Redacted<string>, config: Pick<ClusterConfig, "leaseSeconds">) =>
  PgClient.layer({
    url: Redacted.make(PgSession.url(Redacted.value(url), { idleInTransaction: idleInTransactionMillis(config) })),
    maxConnections: 10,
    applicationName: "tlsrpt-cluster"
  })

/** The fleet's entities and the daily schedule; needs a runner (or SingleRunner) and the stages. */
export const entities = (config: ReporterConfig, options: ReportRound.RoundOptions = {}) =>
  Layer.mergeAll(ReportKey.layer(config), ReportRound.layer(config, options), ReportRound.schedule(config))
