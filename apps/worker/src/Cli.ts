/**
 * The `tlsrpt` command line (@effect/cli), assembled from one module per command (`commands/`).
 * Every command has `--help`; `--config FILE` is accepted before or after the command name. Errors
 * are one line on stderr and a non-zero exit: 2 for a configuration error, 1 for anything else
 * (see `main.ts`).
 */
import * as Command from "@effect/cli/Command"
import { Effect } from "effect"
import * as Cluster from "./commands/Cluster.js"
import * as Import from "./commands/Import.js"
import * as Init from "./commands/Init.js"
import * as Lookup from "./commands/Lookup.js"
import * as Migrate from "./commands/Migrate.js"
import * as Outbox from "./commands/Outbox.js"
import * as Parse from "./commands/Parse.js"
import * as Record from "./commands/Record.js"
import * as Results from "./commands/Results.js"
import { CliEnvironment, root } from "./commands/Root.js"
import * as Send from "./commands/Send.js"
import * as Suppress from "./commands/Suppress.js"
import * as Worker from "./commands/Worker.js"

export { CliEnvironment, CommandError } from "./commands/Root.js"

export const VERSION = "0.1.0"

/** Every command, in `--help` order. A new command is one module in `commands/` and one entry here. */
const commands = [
  Worker.command,
  Init.command,
  Import.command,
  Record.command,
  Send.command,
  Results.command,
  Outbox.command,
  Suppress.command,
  Lookup.command,
  Parse.command,
  Migrate.command,
  Cluster.command
] as const

const cli = Command.run(
  root.pipe(Command.withDescription("TLS reporting (RFC 8460) for outgoing mail"), Command.withSubcommands(commands)),
  { name: "tlsrpt", version: VERSION }
)

/** Runs the CLI on `argv` (as `process.argv`: node, script, args…). */
export const run = (argv: ReadonlyArray<string>, environment: typeof CliEnvironment.Service) =>
  cli(argv).pipe(Effect.provideService(CliEnvironment, environment))
