/**
 * `tlsrpt cluster status`: what the cluster tables say. Runners come from `cluster_runners`; shard
 * ownership is computed the way every runner computes it (a hash ring over the healthy runners with a
 * fresh heartbeat, `@effect/cluster` Sharding), since PostgreSQL keeps shard locks as advisory locks,
 * not rows; the rounds are the `ReportRound` messages of `cluster_messages` and their replies.
 */
import { Runner, type RunnerAddress } from "@effect/cluster"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, HashRing, Schema } from "effect"
import { RoundSummarySchema, RunRound } from "./ReportRound.js"

export interface RunnerStatus {
  readonly address: string
  readonly machineId: number
  readonly healthy: boolean
  /** Heartbeat within the lock expiry: the runner takes part in shard assignment. */
  readonly alive: boolean
  readonly lastHeartbeat: string
  /** Shards this runner owns, as ranges (`1-42,97`). */
  readonly shards: string
  readonly shardCount: number
}

export interface RoundStatus {
  readonly id: string
  readonly day: string
  readonly state: "running" | "done" | "failed"
  readonly reports?: number | undefined
  readonly queued?: number | undefined
  readonly keys?: number | undefined
  readonly kept?: number | undefined
  readonly error?: string | undefined
}

export interface Status {
  readonly shards: number
  readonly runners: ReadonlyArray<RunnerStatus>
  readonly unowned: number
  /** The most recent round requests, newest first. */
  readonly rounds: ReadonlyArray<RoundStatus>
}

/** `[1,2,3,7]` → `1-3,7` */
export const ranges = (ids: ReadonlyArray<number>): string => {
  const sorted = [...ids].sort((a, b) => a - b)
  const out: Array<string> = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] ?? 0) + 1) j++
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return out.join(",")
}

const decodeRun = Schema.decodeUnknownOption(Schema.parseJson(RunRound))
const decodeSummary = Schema.decodeUnknownOption(RoundSummarySchema)
const ExitJson = Schema.parseJson(
  Schema.Union(
    Schema.Struct({ _tag: Schema.Literal("Success"), value: Schema.Unknown }),
    Schema.Struct({ _tag: Schema.Literal("Failure"), cause: Schema.Unknown })
  )
)
const decodeExit = Schema.decodeUnknownOption(ExitJson)

/**
 * Reads the status. `shards` must be the cluster's `shards` setting; `lockExpirationSeconds` the
 * runners' shard lock expiry (35 s by default), which is also how stale a heartbeat may be.
 */
export const read = (options: {
  readonly shards: number
  readonly lockExpirationSeconds?: number
  readonly rounds?: number
}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const expiry = Math.ceil(options.lockExpirationSeconds ?? 35)
    const fresh = sql.onDialectOrElse({
      pg: () => sql.literal(`last_heartbeat > NOW() - INTERVAL '${expiry} seconds'`),
      orElse: () => sql.literal(`last_heartbeat > datetime(CURRENT_TIMESTAMP, '-${expiry} seconds')`)
    })
    const rows = yield* sql<{
      machine_id: number
      address: string
      runner: string
      healthy: boolean | number
      last_heartbeat: string | Date
      alive: boolean | number
    }>`SELECT machine_id, address, runner, healthy, last_heartbeat, (${fresh}) AS alive FROM cluster_runners ORDER BY address`.pipe(
      Effect.catchTag("SqlError", () => Effect.succeed([]))
    )
    const runners = rows.map((r) => ({ row: r, runner: Runner.Runner.decodeSync(r.runner) }))
    const ring = HashRing.make<RunnerAddress.RunnerAddress>()
    for (const { row, runner } of runners) {
      if (row.healthy && row.alive && runner.groups.includes("default")) {
        HashRing.add(ring, runner.address, { weight: runner.weight })
      }
    }
    const assignment = HashRing.getShards(ring, options.shards)
    const owned = new Map<string, Array<number>>()
    assignment?.forEach((address, i) => {
      const key = `${address.host}:${address.port}`
      owned.set(key, [...(owned.get(key) ?? []), i + 1])
    })
    const runnerStatus = runners.map(({ row }): RunnerStatus => {
      const shards = owned.get(row.address) ?? []
      return {
        address: row.address,
        machineId: Number(row.machine_id),
        healthy: Boolean(row.healthy),
        alive: Boolean(row.alive),
        lastHeartbeat:
          row.last_heartbeat instanceof Date ? row.last_heartbeat.toISOString() : String(row.last_heartbeat),
        shards: ranges(shards),
        shardCount: shards.length
      }
    })
    const messages = yield* sql<{
      payload: string
      exit: string | null
    }>`SELECT m.payload AS payload, r.payload AS exit FROM cluster_messages m
       LEFT JOIN cluster_replies r ON r.request_id = m.id AND r.kind = 0
       WHERE m.entity_type = 'ReportRound' AND m.kind = 0
       ORDER BY m.rowid DESC LIMIT ${options.rounds ?? 5}`.pipe(Effect.catchTag("SqlError", () => Effect.succeed([])))
    const rounds = messages.flatMap((m): Array<RoundStatus> => {
      const run = decodeRun(m.payload)
      if (run._tag === "None") return []
      const base = { id: run.value.id, day: run.value.day }
      if (m.exit === null) return [{ ...base, state: "running" }]
      const exit = decodeExit(m.exit)
      if (exit._tag === "Some" && exit.value._tag === "Success") {
        const summary = decodeSummary(exit.value.value)
        if (summary._tag === "Some") {
          const s = summary.value
          return [
            { ...base, state: "done", reports: s.reports, queued: s.queued, keys: s.keys.length, kept: s.kept.length }
          ]
        }
      }
      return [{ ...base, state: "failed", error: m.exit.slice(0, 200) }]
    })
    return {
      shards: options.shards,
      runners: runnerStatus,
      unowned: assignment === undefined ? options.shards : 0,
      rounds
    } satisfies Status
  })

/** The status as the CLI prints it without `--json`. */
export const format = (status: Status): string => {
  const lines = [`shards: ${status.shards}${status.unowned > 0 ? ` (${status.unowned} without a runner)` : ""}`]
  lines.push(`runners: ${status.runners.length}`)
  for (const r of status.runners) {
    const state = !r.healthy ? "unhealthy" : r.alive ? "up" : "stale"
    lines.push(`  ${r.address}  ${state}  heartbeat ${r.lastHeartbeat}  ${r.shardCount} shards ${r.shards}`)
  }
  lines.push(`rounds: ${status.rounds.length === 0 ? "none yet" : ""}`)
  for (const r of status.rounds) {
    const detail =
      r.state === "done"
        ? `${r.reports} reports, ${r.queued} messages queued, ${r.keys} keys, ${r.kept} kept`
        : r.state === "failed"
          ? (r.error ?? "")
          : ""
    lines.push(`  ${r.day}  ${r.id}  ${r.state}  ${detail}`)
  }
  return lines.join("\n")
}
