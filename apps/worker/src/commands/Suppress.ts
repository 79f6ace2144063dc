/** `tlsrpt suppress add|list|remove`: the suppression list. */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { SuppressionList } from "@tlsrpt/store"
import { Clock, Console, Effect, Either, Option } from "effect"
import * as Admin from "../Admin.js"
import * as Table from "../Table.js"
import { CommandError, configOption, iso, jsonOption, loadConfig, withStore } from "./Root.js"

const add = Command.make(
  "add",
  {
    config: configOption,
    address: Args.text({ name: "ADDRESS|URI" }),
    until: Options.text("until").pipe(
      Options.withPseudoName("ISO-8601"),
      Options.withDescription("ISO-8601 date-time the suppression ends")
    ),
    comment: Options.text("comment").pipe(
      Options.withPseudoName("TEXT"),
      Options.optional,
      Options.withDescription("Why")
    )
  },
  (args) =>
    Effect.gen(function* () {
      const parsed = Admin.parseUntil(args.until)
      if (Either.isLeft(parsed)) return yield* new CommandError({ reason: `--until: ${parsed.left}` })
      const until = parsed.right
      const config = yield* loadConfig(args.config)
      const entry = yield* withStore(
        config,
        Effect.flatMap(SuppressionList, (s) =>
          s.add({ address: args.address, until, comment: Option.getOrUndefined(args.comment) })
        )
      )
      yield* Console.log(`suppressed ${entry.address} until ${iso(entry.until)}`)
    })
).pipe(Command.withDescription("Suppress reports to a mail address or an https reporting URI until a date"))

const list = Command.make("list", { config: configOption, json: jsonOption }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    const entries = yield* withStore(
      config,
      Effect.flatMap(SuppressionList, (s) => s.list)
    )
    const api = entries.map(Admin.toApiSuppression)
    if (args.json) return yield* Console.log(JSON.stringify(api))
    if (api.length === 0) return yield* Console.log("nobody is suppressed")
    const now = yield* Clock.currentTimeMillis
    yield* Console.log(
      Table.render(
        ["address", "until", "active", "comment"],
        entries.map((s) => [s.address, iso(s.until), s.until.getTime() > now ? "yes" : "expired", s.comment])
      )
    )
  })
).pipe(Command.withDescription("List the suppression list"))

const remove = Command.make("remove", { config: configOption, address: Args.text({ name: "ADDRESS|URI" }) }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    const removed = yield* withStore(
      config,
      Effect.flatMap(SuppressionList, (s) => s.remove(args.address))
    )
    if (!removed) return yield* new CommandError({ reason: `${args.address} is not on the suppression list` })
    yield* Console.log(`removed ${args.address}`)
  })
).pipe(Command.withDescription("Remove an address or https URI from the suppression list"))

export const command = Command.make("suppress").pipe(
  Command.withDescription("Manage the suppression list"),
  Command.withSubcommands([add, list, remove])
)
