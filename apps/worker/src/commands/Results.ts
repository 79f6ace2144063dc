/** `tlsrpt results`: the stored results, as a table or one JSON array. */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { ResultStore } from "@tlsrpt/store"
import { Console, Effect, Option } from "effect"
import * as Admin from "../Admin.js"
import * as Table from "../Table.js"
import { configOption, jsonOption, loadConfig, parseDay, parseDomain, withStore } from "./Root.js"

export const command = Command.make(
  "results",
  {
    config: configOption,
    day: Options.text("day").pipe(
      Options.withPseudoName("YYYY-MM-DD"),
      Options.optional,
      Options.withDescription("Only this UTC day")
    ),
    domain: Options.text("domain").pipe(
      Options.withPseudoName("DOMAIN"),
      Options.optional,
      Options.withDescription("Only rows with this policy or recipient domain")
    ),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function* () {
      const day = Option.isSome(args.day) ? yield* parseDay("--day", args.day.value) : undefined
      const domain = Option.isSome(args.domain) ? (yield* parseDomain("--domain", args.domain.value)).ascii : undefined
      const config = yield* loadConfig(args.config)
      const rows = yield* withStore(
        config,
        Effect.flatMap(ResultStore, (s) => s.listResults({ day, domain }))
      )
      const api = rows.map(Admin.toApiRow)
      if (args.json) return yield* Console.log(JSON.stringify(api))
      if (api.length === 0) return yield* Console.log("no results")
      yield* Console.log(
        Table.render(
          [
            "day",
            "policy domain",
            "recipient domain",
            "host",
            "types",
            "success",
            "failure",
            "details",
            "send",
            "sent"
          ],
          api.map((r) => [
            r.day,
            r.policyDomain,
            r.recipientDomain,
            r.isHost ? "yes" : "no",
            r.policyTypes.join(","),
            r.success,
            r.failure,
            r.failureDetails,
            r.sendReport ? "yes" : "no",
            [r.sentToRecipientDomain ? "rcpt" : "", r.sentToPolicyDomain ? "policy" : ""].filter(Boolean).join(",") ||
              "-"
          ])
        )
      )
    })
).pipe(Command.withDescription("List stored results"))
