/** `tlsrpt parse FILE`: an incoming report (.eml, .json, .json.gz) printed as JSON. */
import * as NodePath from "node:path"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as FileSystem from "@effect/platform/FileSystem"
import { Report, ReportMessage } from "@tlsrpt/core"
import { Effect } from "effect"
import { CliEnvironment, CommandError, printJson } from "./Root.js"

export const command = Command.make("parse", { file: Args.text({ name: "FILE" }) }, (args) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = NodePath.resolve((yield* CliEnvironment).cwd, args.file)
    const bytes = yield* fs
      .readFile(path)
      .pipe(Effect.mapError((e) => new CommandError({ reason: `cannot read ${args.file}: ${e.message}` })))
    // A bare report (.json, .json.gz, or gzip / JSON by content), else a mail message (.eml).
    const bare = /\.json(\.gz)?$/i.test(path) || (bytes[0] === 0x1f && bytes[1] === 0x8b) || bytes[0] === 0x7b /* { */
    // A report from anyone: result types outside the IANA list are kept (docs/design.md#received-result-types).
    const report = yield* bare ? ReportMessage.parseJsonOrGzipReceived(bytes) : ReportMessage.parseReceived(bytes)
    yield* printJson(Report.receivedToJson(report))
  })
).pipe(Command.withDescription("Print an incoming report (.eml, .json, .json.gz) as JSON"))
