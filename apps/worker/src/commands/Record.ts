/** `tlsrpt record FILE|-`: session outcomes (the collector's input) as JSON lines, all or nothing. */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { type InvalidOutcome, SessionOutcome } from "@tlsrpt/collector"
import { Day } from "@tlsrpt/core"
import { Clock, Console, Effect, Either, Layer } from "effect"
import * as JsonLines from "../JsonLines.js"
import * as Layers from "../Layers.js"
import * as Worker from "../Worker.js"
import { configOption, loadConfig, readInput } from "./Root.js"

const outcomeReason = (e: InvalidOutcome) => (e.field === "" ? e.reason : `${e.field}: ${e.reason}`)

export const command = Command.make("record", { config: configOption, file: Args.text({ name: "FILE|-" }) }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    const text = yield* readInput(args.file)
    const lines = text.split("\n")
    const now = yield* Clock.currentTimeMillis
    const outcomes: Array<SessionOutcome.SessionOutcome> = []
    const lineOf: Array<number> = []
    for (let i = 0; i < lines.length; i++) {
      if (lines[i]!.trim() === "") continue
      const unreadable = JsonLines.checkLine(lines[i]!)
      if (unreadable !== undefined) return yield* new JsonLines.LineError({ line: i + 1, reason: unreadable })
      const decoded = SessionOutcome.decodeOutcomeJson(lines[i]!)
      if (Either.isLeft(decoded))
        return yield* new JsonLines.LineError({ line: i + 1, reason: outcomeReason(decoded.left) })
      const future = JsonLines.futureDay(Day.fromMillis(decoded.right.timestamp.getTime()), now)
      if (future !== undefined) return yield* new JsonLines.LineError({ line: i + 1, reason: `timestamp: ${future}` })
      outcomes.push(decoded.right)
      lineOf.push(i + 1)
    }
    const stats = yield* Worker.recordOutcomes(outcomes).pipe(
      Effect.catchTag("OutcomeRefused", (e) =>
        Effect.fail(new JsonLines.LineError({ line: lineOf[e.index]!, reason: outcomeReason(e.invalid) }))
      ),
      Effect.provide(Worker.collector(config).pipe(Layer.provideMerge(Layers.store(config)))),
      Effect.mapError(Layers.nameDatabase(config))
    )
    if (!config.reports.enabled || !config.reports.collect)
      return yield* Console.log("collection is off (reports.enabled / reports.collect = false): nothing recorded")
    yield* Console.log(
      `recorded ${stats.recorded} session outcome${stats.recorded === 1 ? "" : "s"} (${stats.flushed} rows, ${stats.skipped} without rows)`
    )
  })
).pipe(
  Command.withDescription("Record session outcomes (the collector's input), one JSON object a line. All or nothing.")
)
