/**
 * The daily round in the fleet (docs/design.md#fleet-round): a persisted entity per day whose `Run`
 * message runs the reporter's round (plan, pacing, two phases, cleanup) with each key's step sent to
 * the key's sharded entity (`ReportKey`). Phase 2 starts only when every phase-1 reply is in
 * (docs/design.md#two-phases). A `ClusterCron` sends `Run` for the day that just ended after every
 * 00:00 UTC (plus jitter), and a singleton sends it once at start-up; both use the primary key
 * `daily:<day>`, so however many runners start, one round per day runs. When the runner that runs a
 * round dies, the `Run` message goes to the next owner of its shard, which runs the round again: keys
 * already answered get their stored replies, the others are sent.
 */
import { ClusterCron, ClusterSchema, Entity, Singleton } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import { Day } from "@tlsrpt/core"
import {
  type KeyReport,
  type ReporterConfig,
  ReporterLive,
  ReporterSchedule,
  type RoundSummary
} from "@tlsrpt/reporter"
import { ResultStore } from "@tlsrpt/store"
import { Cause, Clock, Cron, Duration, Effect, Exit, Layer, Option, PrimaryKey, Schedule, Schema } from "effect"
import { KeyReportSchema, ReportKey, SendKey, entityId } from "./ReportKey.js"

export const RoundSummarySchema = Schema.Struct({
  day: Day.Day,
  keys: Schema.Array(KeyReportSchema),
  reports: Schema.Number,
  queued: Schema.Number,
  kept: Schema.Array(KeyReportSchema),
  deletedRows: Schema.Number
})

/** The round could not run (its store failed); its keys stay stored for the next round. */
export class RoundFailed extends Schema.TaggedError<RoundFailed>()("RoundFailed", {
  day: Schema.String,
  reason: Schema.String
}) {}

/** `id` names one request for a round: `daily:<day>` for the schedule, a fresh id for each `tlsrpt send`. */
export class RunRound extends Schema.Class<RunRound>("@tlsrpt/fleet/RunRound")({
  id: Schema.String,
  day: Day.Day,
  pace: Schema.Boolean
}) {
  [PrimaryKey.symbol]() {
    return this.id
  }
}

export const ReportRound = Entity.make("ReportRound", [
  Rpc.make("Run", { payload: RunRound, success: RoundSummarySchema, error: RoundFailed })
])
  .annotateRpcs(ClusterSchema.Persisted, true)
  // An interrupted round (its shard was taken away while the runner lives on) runs again; an
  // interruption stored as its reply would answer every later request for it (docs/design.md#fleet-faults).
  .annotateRpcs(ClusterSchema.Uninterruptible, "server")

export interface RoundOptions {
  /** Keys in flight at once over the whole fleet when the round is not paced (default 64). */
  readonly concurrency?: number | undefined
}

const retriable = (e: { readonly _tag: string }) =>
  e._tag === "MailboxFull" || e._tag === "PersistenceError" || e._tag === "AlreadyProcessingMessage"

/**
 * Sends a persisted message and waits for its reply, asking again (same message id) when the call is
 * interrupted or the cluster's storage fails: a runner that went away, lost its shards or its
 * database interrupts its callers, yet the stored message lives on and the next owner of its shard
 * answers it (docs/design.md#fleet-faults). Up to ~10 minutes, longer than a shard lease and a
 * database restart. The caller's own interruption still stops it (at the sleep).
 */
const askUntilAnswered = <A, E extends { readonly _tag: string }, R>(what: string, ask: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    for (let attempt = 1; ; attempt++) {
      const exit = yield* Effect.exit(ask)
      if (Exit.isSuccess(exit)) return exit.value
      const again =
        Cause.isInterruptedOnly(exit.cause) ||
        Option.match(Cause.failureOption(exit.cause), { onNone: () => false, onSome: retriable })
      if (!again || attempt >= 120) return yield* exit
      if (attempt === 1) yield* Effect.logWarning(`${what}: interrupted or not stored; asking again`)
      yield* Effect.sleep(Duration.seconds(Math.min(5, attempt)))
    }
  })

/** A round that failed on its store (the database restarting) runs again, about two minutes at most. */
const roundRetries = Schedule.exponential("1 second").pipe(
  Schedule.union(Schedule.spaced("15 seconds")),
  Schedule.intersect(Schedule.recurs(10))
)

type RoundClient = Effect.Effect.Success<typeof ReportRound.client>

/**
 * The id of the scheduled round of `day` asked for on `today`: `daily:<day>` the day after, as every
 * runner computes it; a catch-up asked later carries its own day (`daily:<day>@<today>`), so a round
 * that failed is asked for again at the next wake-up instead of being answered from its stored failure.
 */
const dailyId = (day: Day.Day, today: Day.Day) =>
  Day.addDays(day, 1) === today ? `daily:${day}` : `daily:${day}@${today}`

const isDaily = (run: RunRound) => run.id.startsWith("daily:")

/**
 * docs/design.md#schedule-catch-up in the fleet: requests, without waiting, the round of the oldest
 * ended day not yet reported (from the store's reported days); when that daily round is done it
 * marks its day and calls this again, so missed days run one after the other, oldest first, as in
 * the single-process schedule. The message's primary key (`daily:<day>`) keeps each day one round.
 */
const requestNextDaily = (client: RoundClient) =>
  Effect.gen(function* () {
    const store = yield* ResultStore
    const last = yield* store.lastReportedDay.pipe(
      Effect.tapError((e) => Effect.logError("cannot read the reported days; reporting yesterday only", e)),
      Effect.orElseSucceed(() => undefined)
    )
    const today = Day.fromMillis(yield* Clock.currentTimeMillis)
    const day = ReporterSchedule.nextDayToReport(last, Day.addDays(today, -1))
    if (day === undefined) return
    yield* client(day).Run(new RunRound({ id: dailyId(day, today), day, pace: true }), { discard: true })
    yield* Effect.logInfo(`report round for ${day} requested`)
  })

/** The round's entity: the reporter's round, each key's step a message to the key's entity. */
export const layer = (config: ReporterConfig, options: RoundOptions = {}) =>
  ReportRound.toLayer(
    Effect.gen(function* () {
      const store = yield* ResultStore
      const keyClient = yield* ReportKey.client
      const roundClient = yield* ReportRound.client
      return ReportRound.of({
        Run: ({ payload }) => {
          const sendKey: ReporterLive.KeySender = (phase, policyDomain, day, retries, inBoth) =>
            askUntilAnswered(
              `the key ${policyDomain} ${day}`,
              keyClient(entityId(day, phase, policyDomain)).Send(
                new SendKey({
                  round: payload.id,
                  phase,
                  policyDomain,
                  day,
                  inBoth,
                  retriesMs: retries.map(Duration.toMillis)
                })
              )
            ).pipe(
              Effect.catchAll(
                (e): Effect.Effect<KeyReport> =>
                  Effect.logError(`the key's entity could not be reached; its rows stay for the next round`, e).pipe(
                    Effect.as({ phase, policyDomain, day, outcome: "kept-error", queued: 0, detail: e._tag })
                  )
              )
            )
          return ReporterLive.makeRound(
            config,
            ReporterLive.batchOfKeys(sendKey, { concurrency: options.concurrency ?? 64 })
          ).pipe(
            Effect.flatMap((reporter) => reporter.runRound(payload.day, { pace: payload.pace })),
            Effect.provideService(ResultStore, store),
            Effect.mapError((e) => new RoundFailed({ day: payload.day, reason: e.reason })),
            // idempotent: the keys already answered in this round get their stored replies
            Effect.tapError((e) => Effect.logWarning(`the round failed on its store, running it again: ${e.reason}`)),
            Effect.retry(roundRetries),
            // a daily round done: its day is reported, and the next missed day (if any) is requested
            Effect.tap(() =>
              isDaily(payload)
                ? store.markDayReported(payload.day).pipe(
                    Effect.zipRight(requestNextDaily(roundClient)),
                    Effect.provideService(ResultStore, store),
                    Effect.catchAll((e) => Effect.logError("the round's day could not be marked reported", e))
                  )
                : Effect.void
            ),
            Effect.map((summary): RoundSummary => summary),
            Effect.annotateLogs({ round: payload.id })
          )
        }
      })
    }),
    // One round per day at a time: a `send` for a day waits for the scheduled round of that day.
    { concurrency: 1 }
  )

/**
 * Asks the cluster for the round of `day` and waits for its summary. When the runner running it goes
 * away, the client may see an interruption although the stored message lives on (another runner takes
 * it): the request is sent again with the same id, which the cluster answers from the stored reply.
 */
export const request = (run: RunRound) =>
  Effect.flatMap(ReportRound.client, (client) => askUntilAnswered(`the round ${run.id}`, client(run.day).Run(run)))

/**
 * docs/design.md#schedule in the fleet: the cron fires at 00:00 UTC on one runner, waits the jitter,
 * and requests the round of the oldest day not yet reported (normally the day that just ended); the
 * start-up singleton does the same once, so a fleet that was down at midnight, or for days, still
 * reports every day (docs/design.md#schedule-catch-up; the primary key keeps each day one round).
 */
export const schedule = (config: Pick<ReporterConfig, "jitterMin" | "jitterMax">) =>
  Layer.mergeAll(
    ClusterCron.make({
      name: "tlsrpt-report-round",
      cron: Cron.unsafeParse("0 0 * * *", "UTC"),
      execute: Effect.gen(function* () {
        yield* Effect.sleep(Duration.millis(yield* ReporterSchedule.jitterMillis(config)))
        yield* requestNextDaily(yield* ReportRound.client)
      })
    }),
    Singleton.make("tlsrpt-report-round-startup", Effect.flatMap(ReportRound.client, requestNextDaily))
  )
