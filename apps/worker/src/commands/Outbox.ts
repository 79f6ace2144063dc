/** `tlsrpt outbox` (the report outbox with delivery statuses) and `tlsrpt outbox retry`. */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Outbox } from "@tlsrpt/store"
import { Clock, Console, Effect, Option } from "effect"
import * as Admin from "../Admin.js"
import * as Table from "../Table.js"
import { CommandError, configOption, jsonOption, loadConfig, withStore } from "./Root.js"

// The dead letter's way out: a failed message gets a fresh schedule, due now.
const retry = Command.make(
  "retry",
  {
    config: configOption,
    id: Args.integer({ name: "ID" }).pipe(Args.optional),
    failed: Options.boolean("failed").pipe(Options.withDescription("Re-queue every failed message"))
  },
  (args) =>
    Effect.gen(function* () {
      if (Option.isSome(args.id) === args.failed)
        return yield* new CommandError({ reason: "outbox retry: give either an ID or --failed" })
      const config = yield* loadConfig(args.config)
      const now = new Date(yield* Clock.currentTimeMillis)
      const which = Option.isSome(args.id) ? { id: args.id.value } : ("failed" as const)
      const ids = yield* withStore(
        config,
        Effect.flatMap(Outbox, (s) => s.requeue(which, now))
      )
      if (Option.isSome(args.id) && ids.length === 0)
        return yield* new CommandError({ reason: `outbox retry: no failed or queued message with id ${args.id.value}` })
      yield* Console.log(
        ids.length === 0 ? "no failed messages" : `re-queued ${ids.length} message(s): ${ids.join(", ")}`
      )
    })
).pipe(
  Command.withDescription(
    "Queue a failed message again (ID) or every failed one (--failed), with a fresh attempt schedule, due now"
  )
)

export const command = Command.make(
  "outbox",
  {
    config: configOption,
    status: Options.choice("status", ["queued", "delivered", "failed"]).pipe(
      Options.optional,
      Options.withDescription("Only messages with this status")
    ),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function* () {
      const config = yield* loadConfig(args.config)
      const messages = yield* withStore(
        config,
        Effect.flatMap(Outbox, (s) => s.list({ status: Option.getOrUndefined(args.status) }))
      )
      const api = messages.map(Admin.toApiOutbox)
      if (args.json) return yield* Console.log(JSON.stringify(api))
      if (api.length === 0) return yield* Console.log("the outbox is empty")
      yield* Console.log(
        Table.render(
          ["id", "status", "kind", "destination", "report-id", "attempts", "next attempt", "last error"],
          api.map((m) => [
            m.id,
            m.status,
            m.kind,
            m.destination,
            m.reportId,
            m.attempts,
            m.status === "queued" ? m.nextAttemptAt : "-",
            m.lastError ?? ""
          ])
        )
      )
    })
).pipe(Command.withDescription("List the report outbox with delivery statuses"), Command.withSubcommands([retry]))
