/** `tlsrpt send --day D`: one report round now, then one delivery attempt for each queued message. */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Delivery } from "@tlsrpt/mail"
import { Reporter } from "@tlsrpt/reporter"
import { Clock, Console, Effect, Layer } from "effect"
import * as JsonLines from "../JsonLines.js"
import * as Layers from "../Layers.js"
import * as Secrets from "../Secrets.js"
import * as Table from "../Table.js"
import * as Worker from "../Worker.js"
import { CommandError, configOption, loadConfig, parseDay, printJson, strictOption } from "./Root.js"

export const command = Command.make(
  "send",
  {
    config: configOption,
    day: Options.text("day").pipe(
      Options.withPseudoName("YYYY-MM-DD"),
      Options.withDescription("The UTC day to report, YYYY-MM-DD")
    ),
    spread: Options.boolean("spread").pipe(Options.withDescription("Pace the sends as the daily round does")),
    strict: strictOption,
    json: Options.boolean("json").pipe(Options.withDescription("Print the round summary as JSON"))
  },
  (args) =>
    Effect.gen(function* () {
      const day = yield* parseDay("--day", args.day)
      const future = JsonLines.futureDay(day, yield* Clock.currentTimeMillis)
      if (future !== undefined) return yield* new CommandError({ reason: `--day: ${future}` })
      const config = yield* loadConfig(args.config)
      yield* Secrets.checkModes(Worker.dkimFiles(config), { strict: args.strict })
      const storeLayer = Layers.store(config)
      const services = Layer.mergeAll(
        Layers.reporter(config, storeLayer, { retries: false, cachedLookup: false }),
        Layers.delivery(config, storeLayer, { background: false })
      )
      // docs/design.md#fleet-round: with a cluster, the runners do the round and this waits for its deliveries.
      const { round, pass } = yield* config.cluster !== undefined
        ? // loaded only for a cluster (see Worker.ts)
          Effect.flatMap(
            Effect.promise(() => import("../FleetMode.js")),
            (FleetMode) => FleetMode.send(config, day, { pace: args.spread })
          )
        : Effect.gen(function* () {
            const reporter = yield* Reporter
            const delivery = yield* Delivery
            const round = yield* reporter.runRound(day, { pace: args.spread })
            // One attempt for each message just queued (and any other message due now); no waiting for retries.
            const pass = yield* delivery.runOnce
            return { round, pass }
          }).pipe(Effect.provide(services), Effect.mapError(Layers.nameDatabase(config)))
      if (args.json) return yield* printJson({ ...round, delivery: pass })
      yield* Console.log(
        `day ${round.day}: ${round.keys.length} keys, ${round.reports} reports, ${round.queued} messages queued, ${round.deletedRows} stale rows deleted`
      )
      yield* Console.log(`delivery: ${pass.delivered} delivered, ${pass.retried} to retry, ${pass.failed} failed`)
      if (round.keys.length > 0) {
        yield* Console.log(
          Table.render(
            ["phase", "domain", "day", "outcome", "queued", "detail"],
            round.keys.map((k) => [k.phase, k.policyDomain, k.day, k.outcome, k.queued, k.detail ?? ""])
          )
        )
      }
      if (round.kept.length > 0) {
        yield* Console.log(`kept for the next round (temporary errors): ${round.kept.length}`)
        for (const k of round.kept) yield* Console.log(`  ${k.policyDomain} ${k.day}: ${k.detail ?? k.outcome}`)
      }
    })
).pipe(
  Command.withDescription(
    "Run one report round for a UTC day now (rows with day ≤ D), then one delivery attempt for each queued message"
  )
)
