/**
 * The `tlsrpt` bin on `@effect/platform-node`: `NodeRuntime.runMain` handles SIGINT/SIGTERM
 * (interrupting the program, exit 0). Errors are printed here as one line on stderr; exit code 2
 * for configuration errors, 1 otherwise.
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Option } from "effect"
import * as Cli from "./Cli.js"
import * as Log from "./Log.js"

/** The command name in argv (skipping `--config FILE` before it), to decide where logs go. */
export const commandName = (args: ReadonlyArray<string>): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === "--config") i++
    else if (!a.startsWith("-")) return a
  }
  return undefined
}

/** Exit code and the line to print for a failure (undefined: already printed by @effect/cli). */
export const describeFailure = (error: unknown): { readonly code: number; readonly line: string | undefined } => {
  if (ValidationError.isValidationError(error)) return { code: 1, line: undefined }
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : ""
  const message = error instanceof Error ? error.message : String(error)
  return { code: tag === "ConfigError" ? 2 : 1, line: message.replace(/\s*\n\s*/g, " ") }
}

const readStdin = Effect.promise(async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
})

const argv = process.argv
const program = Cli.run(argv, { env: process.env, cwd: process.cwd(), readStdin }).pipe(
  Effect.as(0),
  Effect.catchAllCause((cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    const failure = Cause.failureOption(cause)
    const { code, line } = Option.isSome(failure)
      ? describeFailure(failure.value)
      : { code: 1, line: `internal error: ${Cause.pretty(cause).split("\n")[0]}` }
    return Effect.sync(() => {
      if (line !== undefined) process.stderr.write(`tlsrpt: ${line}\n`)
      return code
    })
  }),
  Effect.provide(NodeContext.layer),
  Effect.provide(Log.layer({ stream: commandName(argv.slice(2)) === "worker" ? "stdout" : "stderr" }))
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit)
        ? typeof exit.value === "number"
          ? exit.value
          : 0
        : Cause.isInterruptedOnly(exit.cause)
          ? 0
          : 1
    )
})
