/** `tlsrpt worker`: everything under supervision until SIGTERM/SIGINT (`../Worker.ts`). */
import * as Command from "@effect/cli/Command"
import { Effect } from "effect"
import * as Layers from "../Layers.js"
import * as Worker from "../Worker.js"
import { configOption, loadConfig, strictOption } from "./Root.js"

export const command = Command.make("worker", { config: configOption, strict: strictOption }, (args) =>
  Effect.gen(function* () {
    const config = yield* loadConfig(args.config)
    yield* Worker.run(config, { strict: args.strict }).pipe(Effect.mapError(Layers.nameDatabase(config)))
  })
).pipe(
  Command.withDescription(
    "Run everything under supervision: collector flushing, the daily reporter, outbox delivery and the admin HTTP server. SIGTERM/SIGINT stop it cleanly (exit 0)."
  )
)
