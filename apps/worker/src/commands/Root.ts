/**
 * The root `tlsrpt` command and what its subcommands share: the process environment (a service, so
 * commands are plain module values), the `--config` option accepted before or after the command
 * name, config loading, the store for one-shot commands and input parsing. Each command lives in its
 * own module beside this one; `Cli.ts` assembles them.
 */
import * as NodePath from "node:path"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import { Day, Domain } from "@tlsrpt/core"
import { Console, Context, Data, Effect, Either, Option } from "effect"
import * as Config from "../Config.js"
import * as Layers from "../Layers.js"

/** A usage or runtime error of a command: printed as one line, exit code 1. */
export class CommandError extends Data.TaggedError("CommandError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** What the CLI reads from its process, provided by `Cli.run` so tests can run it in-process. */
export class CliEnvironment extends Context.Tag("tlsrpt/CliEnvironment")<
  CliEnvironment,
  {
    readonly env: Readonly<Record<string, string | undefined>>
    readonly cwd: string
    /** Reads standard input to the end (for `FILE` = `-`). */
    readonly readStdin: Effect.Effect<string>
  }
>() {}

export const configOption = Options.text("config").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("The JSON config file (default: $TLSRPT_CONFIG, else the embedded default)"),
  Options.optional
)

export const jsonOption = Options.boolean("json").pipe(
  Options.withDescription("Print one JSON array instead of a table")
)

export const strictOption = Options.boolean("strict").pipe(
  Options.withDescription("Refuse to start when a secret file (DKIM key, admin token) is readable by group or others")
)

export const root = Command.make("tlsrpt", { config: configOption })

/** The command's own `--config`, else the one given before the command name. */
export const configPath = (own: Option.Option<string>) =>
  Effect.map(root, (r) => Option.getOrUndefined(Option.orElse(own, () => r.config)))

export const loadConfig = (own: Option.Option<string>) =>
  Effect.gen(function* () {
    const environment = yield* CliEnvironment
    const configFile = yield* configPath(own)
    return yield* Config.load({ configFile, env: environment.env, cwd: environment.cwd })
  })

/** Runs `effect` on the configured store; a store failure names the database. */
export const withStore = <A, E, R>(config: Config.WorkerConfig, effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Layers.store(config)).pipe(Effect.mapError(Layers.nameDatabase(config)))

export const parseDay = (option: string, s: string) =>
  Either.match(Day.parse(s), {
    onLeft: (reason) => Effect.fail(new CommandError({ reason: `${option}: ${reason}` })),
    onRight: Effect.succeed
  })

export const parseDomain = (what: string, s: string) =>
  Either.match(Domain.parse(s), {
    onLeft: (e) => Effect.fail(new CommandError({ reason: `${what}: ${e.message}` })),
    onRight: Effect.succeed
  })

/** A file's text, or standard input for `-`. */
export const readInput = (file: string) =>
  Effect.flatMap(CliEnvironment, (environment) =>
    file === "-"
      ? environment.readStdin
      : Effect.flatMap(FileSystem.FileSystem, (fs) =>
          fs
            .readFileString(NodePath.resolve(environment.cwd, file))
            .pipe(Effect.mapError((e) => new CommandError({ reason: `cannot read ${file}: ${e.message}` })))
        )
  )

export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

export const iso = (d: Date) => d.toISOString().replace(".000Z", "Z")
