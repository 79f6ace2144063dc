/** `tlsrpt import FILE|-`: aggregate rows as JSON lines, all or nothing. */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { ResultStore } from "@tlsrpt/store"
import { Clock, Console, Effect } from "effect"
import * as JsonLines from "../JsonLines.js"
import { configOption, loadConfig, readInput, withStore } from "./Root.js"

export const command = Command.make("import", { config: configOption, file: Args.text({ name: "FILE|-" }) }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    const text = yield* readInput(args.file)
    const rows = yield* JsonLines.decodeImport(text, yield* Clock.currentTimeMillis)
    yield* withStore(
      config,
      Effect.flatMap(ResultStore, (store) => store.addResults(rows))
    )
    yield* Console.log(`imported ${rows.length} row${rows.length === 1 ? "" : "s"}`)
  })
).pipe(
  Command.withDescription(
    'Import aggregate rows, one JSON object a line: {"policy-domain", "day", "recipient-domain", "is-host", "send-report", "results"}. All or nothing.'
  )
)
