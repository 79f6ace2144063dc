/**
 * The `tlsrpt` command line (@effect/cli). Every command has `--help`; `--config FILE` is accepted
 * before or after the command name. Errors are one line on stderr and a non-zero exit: 2 for a
 * configuration error, 1 for anything else (see `main.ts`).
 */
import * as NodePath from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { type InvalidOutcome, SessionOutcome } from "@tlsrpt/collector"
import { Day, Domain, Report, ReportMessage, TlsrptRecord } from "@tlsrpt/core"
import { TlsrptLookup } from "@tlsrpt/dns"
import { Delivery } from "@tlsrpt/mail"
import { Destinations, Reporter } from "@tlsrpt/reporter"
import { ResultStore } from "@tlsrpt/store"
import { Clock, Console, Data, Effect, Either, Layer, Option } from "effect"
import * as Admin from "./Admin.js"
import * as Config from "./Config.js"
import * as Init from "./Init.js"
import * as JsonLines from "./JsonLines.js"
import * as Layers from "./Layers.js"
import * as Secrets from "./Secrets.js"
import * as Table from "./Table.js"
import * as Terminal from "./Terminal.js"
import * as Worker from "./Worker.js"

export const VERSION = "0.1.0"

/** A usage or runtime error of a command: printed as one line, exit code 1. */
export class CommandError extends Data.TaggedError("CommandError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** What the CLI reads from its process, passed in so tests can run it in-process. */
export interface CliEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
  /** Reads standard input to the end (for `FILE` = `-`). */
  readonly readStdin: Effect.Effect<string>
}

// ---------------------------------------------------------------------------------------------------
// Shared options

const configOption = Options.text("config").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("The JSON config file (default: $TLSRPT_CONFIG, else the embedded default)"),
  Options.optional
)
const jsonOption = Options.boolean("json").pipe(Options.withDescription("Print one JSON array instead of a table"))

const strictOption = Options.boolean("strict").pipe(
  Options.withDescription("Refuse to start when a secret file (DKIM key, admin token) is readable by group or others")
)

const root = Command.make("tlsrpt", { config: configOption })

const configPath = (own: Option.Option<string>) =>
  Effect.map(root, (r) => Option.getOrUndefined(Option.orElse(own, () => r.config)))

const loadConfig = (environment: CliEnvironment, own: Option.Option<string>) =>
  Effect.flatMap(configPath(own), (configFile) =>
    Config.load({ configFile, env: environment.env, cwd: environment.cwd })
  )

const parseDay = (option: string, s: string) =>
  Either.match(Day.parse(s), {
    onLeft: (reason) => Effect.fail(new CommandError({ reason: `${option}: ${reason}` })),
    onRight: Effect.succeed
  })

const parseDomain = (what: string, s: string) =>
  Either.match(Domain.parse(s), {
    onLeft: (e) => Effect.fail(new CommandError({ reason: `${what}: ${e.message}` })),
    onRight: Effect.succeed
  })

const readInput = (environment: CliEnvironment, file: string) =>
  file === "-"
    ? environment.readStdin
    : Effect.flatMap(FileSystem.FileSystem, (fs) =>
        fs
          .readFileString(NodePath.resolve(environment.cwd, file))
          .pipe(Effect.mapError((e) => new CommandError({ reason: `cannot read ${file}: ${e.message}` })))
      )

const outcomeReason = (e: InvalidOutcome) => (e.field === "" ? e.reason : `${e.field}: ${e.reason}`)

const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

const iso = (d: Date) => d.toISOString().replace(".000Z", "Z")

// ---------------------------------------------------------------------------------------------------
// Commands

const makeCommands = (environment: CliEnvironment) => {
  const withStore = <A, E, R>(config: Config.WorkerConfig, effect: Effect.Effect<A, E, R>) =>
    Effect.provide(effect, Layers.store(config)).pipe(Effect.mapError(Layers.nameDatabase(config)))

  const worker = Command.make("worker", { config: configOption, strict: strictOption }, (args) =>
    Effect.gen(function* () {
      const config = yield* loadConfig(environment, args.config)
      yield* Worker.run(config, { strict: args.strict }).pipe(Effect.mapError(Layers.nameDatabase(config)))
    })
  ).pipe(
    Command.withDescription(
      "Run everything under supervision: collector flushing, the daily reporter, outbox delivery and the admin HTTP server. SIGTERM/SIGINT stop it cleanly (exit 0)."
    )
  )

  const init = Command.make(
    "init",
    {
      config: configOption,
      domain: Options.text("domain").pipe(
        Options.withPseudoName("DOMAIN"),
        Options.withDescription("The submitter domain (your mail host's domain)")
      ),
      selector: Options.text("selector").pipe(
        Options.withPseudoName("SELECTOR"),
        Options.withDefault("tlsrpt"),
        Options.withDescription("DKIM selector")
      ),
      algorithm: Options.choice("algorithm", ["rsa-sha256", "ed25519-sha256"]).pipe(
        Options.withDefault("rsa-sha256" as const),
        Options.withDescription("DKIM key algorithm")
      ),
      force: Options.boolean("force").pipe(Options.withDescription("Overwrite an existing config file or key"))
    },
    (args) =>
      Effect.gen(function* () {
        const named = (yield* configPath(args.config)) ?? environment.env[Config.ENV_CONFIG] ?? "tlsrpt.json"
        const configFile = NodePath.resolve(environment.cwd, named === "" ? "tlsrpt.json" : named)
        const result = yield* Init.run({
          domain: args.domain,
          configFile,
          selector: args.selector,
          algorithm: args.algorithm,
          force: args.force
        })
        yield* Console.log(`wrote ${result.configFile}`)
        yield* Console.log(`wrote ${result.keyFile}`)
        yield* Console.log("")
        yield* Console.log("Publish these DNS records:")
        for (const r of result.records) yield* Console.log(r)
        yield* Console.log("")
        yield* Console.log(
          'Reports are written into <dataDir>/outbox until you add "transport": { "type": "smtp", "url": "smtp://host:port" }.'
        )
        yield* Console.log(`Start: TLSRPT_CONFIG=${result.configFile} tlsrpt worker`)
      })
  ).pipe(Command.withDescription("Write a config file and a DKIM key pair; print the DNS records to publish"))

  const importCommand = Command.make("import", { config: configOption, file: Args.text({ name: "FILE|-" }) }, (args) =>
    Effect.gen(function* () {
      const config = yield* loadConfig(environment, args.config)
      const text = yield* readInput(environment, args.file)
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

  const record = Command.make("record", { config: configOption, file: Args.text({ name: "FILE|-" }) }, (args) =>
    Effect.gen(function* () {
      const config = yield* loadConfig(environment, args.config)
      const text = yield* readInput(environment, args.file)
      const lines = text.split("\n")
      const now = yield* Clock.currentTimeMillis
      const outcomes: Array<SessionOutcome.SessionOutcome> = []
      const lineOf: Array<number> = []
      for (let i = 0; i < lines.length; i++) {
        if (lines[i]!.trim() === "") continue
        const unreadable = JsonLines.checkLine(lines[i]!)
        if (unreadable !== undefined) return yield* new JsonLines.LineError({ line: i + 1, reason: unreadable })
        const decoded = SessionOutcome.decodeOutcomeJson(lines[i]!)
        if (Either.isLeft(decoded))
          return yield* new JsonLines.LineError({ line: i + 1, reason: outcomeReason(decoded.left) })
        const future = JsonLines.futureDay(Day.fromMillis(decoded.right.timestamp.getTime()), now)
        if (future !== undefined) return yield* new JsonLines.LineError({ line: i + 1, reason: `timestamp: ${future}` })
        outcomes.push(decoded.right)
        lineOf.push(i + 1)
      }
      const storeLayer = Layers.store(config)
      const stats = yield* Worker.recordOutcomes(outcomes).pipe(
        Effect.catchTag("OutcomeRefused", (e) =>
          Effect.fail(new JsonLines.LineError({ line: lineOf[e.index]!, reason: outcomeReason(e.invalid) }))
        ),
        Effect.provide(Worker.collector(config).pipe(Layer.provideMerge(storeLayer))),
        Effect.mapError(Layers.nameDatabase(config))
      )
      if (!config.reports.enabled || !config.reports.collect)
        return yield* Console.log("collection is off (reports.enabled / reports.collect = false): nothing recorded")
      yield* Console.log(
        `recorded ${stats.recorded} session outcome${stats.recorded === 1 ? "" : "s"} (${stats.flushed} rows, ${stats.skipped} without rows)`
      )
    })
  ).pipe(
    Command.withDescription("Record session outcomes (the collector's input), one JSON object a line. All or nothing.")
  )

  const send = Command.make(
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
        const config = yield* loadConfig(environment, args.config)
        yield* Secrets.checkModes(Worker.dkimFiles(config), { strict: args.strict })
        const storeLayer = Layers.store(config)
        const services = Layer.mergeAll(
          Layers.reporter(config, storeLayer, { retries: false, cachedLookup: false }),
          Layers.delivery(config, storeLayer, { background: false })
        )
        const { round, pass } = yield* Effect.gen(function* () {
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

  const results = Command.make(
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
        const domain = Option.isSome(args.domain)
          ? (yield* parseDomain("--domain", args.domain.value)).ascii
          : undefined
        const config = yield* loadConfig(environment, args.config)
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

  const outbox = Command.make(
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
        const config = yield* loadConfig(environment, args.config)
        const messages = yield* withStore(
          config,
          Effect.flatMap(ResultStore, (s) => s.listOutbox({ status: Option.getOrUndefined(args.status) }))
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
  ).pipe(Command.withDescription("List the report outbox with delivery statuses"))

  // The dead letter's way out: a failed message gets a fresh schedule, due now.
  const outboxRetry = Command.make(
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
        const config = yield* loadConfig(environment, args.config)
        const now = new Date(yield* Clock.currentTimeMillis)
        const which = Option.isSome(args.id) ? { id: args.id.value } : ("failed" as const)
        const ids = yield* withStore(
          config,
          Effect.flatMap(ResultStore, (s) => s.requeue(which, now))
        )
        if (Option.isSome(args.id) && ids.length === 0)
          return yield* new CommandError({
            reason: `outbox retry: no failed or queued message with id ${args.id.value}`
          })
        yield* Console.log(
          ids.length === 0 ? "no failed messages" : `re-queued ${ids.length} message(s): ${ids.join(", ")}`
        )
      })
  ).pipe(
    Command.withDescription(
      "Queue a failed message again (ID) or every failed one (--failed), with a fresh attempt schedule, due now"
    )
  )

  const suppressAdd = Command.make(
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
        const config = yield* loadConfig(environment, args.config)
        const entry = yield* withStore(
          config,
          Effect.flatMap(ResultStore, (s) =>
            s.suppressAdd({ address: args.address, until, comment: Option.getOrUndefined(args.comment) })
          )
        )
        yield* Console.log(`suppressed ${entry.address} until ${iso(entry.until)}`)
      })
  ).pipe(Command.withDescription("Suppress reports to a mail address or an https reporting URI until a date"))

  const suppressList = Command.make("list", { config: configOption, json: jsonOption }, (args) =>
    Effect.gen(function* () {
      const config = yield* loadConfig(environment, args.config)
      const list = yield* withStore(
        config,
        Effect.flatMap(ResultStore, (s) => s.suppressList)
      )
      const api = list.map(Admin.toApiSuppression)
      if (args.json) return yield* Console.log(JSON.stringify(api))
      if (api.length === 0) return yield* Console.log("nobody is suppressed")
      const now = yield* Clock.currentTimeMillis
      yield* Console.log(
        Table.render(
          ["address", "until", "active", "comment"],
          list.map((s) => [s.address, iso(s.until), s.until.getTime() > now ? "yes" : "expired", s.comment])
        )
      )
    })
  ).pipe(Command.withDescription("List the suppression list"))

  const suppressRemove = Command.make(
    "remove",
    { config: configOption, address: Args.text({ name: "ADDRESS|URI" }) },
    (args) =>
      Effect.gen(function* () {
        const config = yield* loadConfig(environment, args.config)
        const removed = yield* withStore(
          config,
          Effect.flatMap(ResultStore, (s) => s.suppressRemove(args.address))
        )
        if (!removed) return yield* new CommandError({ reason: `${args.address} is not on the suppression list` })
        yield* Console.log(`removed ${args.address}`)
      })
  ).pipe(Command.withDescription("Remove an address or https URI from the suppression list"))

  const suppress = Command.make("suppress").pipe(
    Command.withDescription("Manage the suppression list"),
    Command.withSubcommands([suppressAdd, suppressList, suppressRemove])
  )

  const lookup = Command.make("lookup", { config: configOption, domain: Args.text({ name: "DOMAIN" }) }, (args) =>
    Effect.gen(function* () {
      const domain = yield* parseDomain("DOMAIN", args.domain)
      const config = yield* loadConfig(environment, args.config)
      const name = `_smtp._tls.${domain.ascii}`
      const outcome = yield* Effect.either(
        Effect.flatMap(TlsrptLookup, (l) => l.lookup(domain)).pipe(
          Effect.provide(Layers.lookup(config, { cached: false }))
        )
      )
      if (Either.isLeft(outcome)) {
        const e = outcome.left
        switch (e._tag) {
          case "NoTlsrptRecord":
            return yield* Console.log(`${name}: no TLSRPT record; no reports would be sent to ${domain.ascii}`)
          case "MultipleTlsrptRecords":
            yield* Console.log(`${name}: ${e.records.length} TLSRPT records:`)
            for (const r of e.records) yield* Console.log(`  ${Terminal.escapeControls(r)}`)
            return yield* Console.log("RFC 8460 §3: the domain does not implement TLSRPT; its results are discarded")
          case "TlsrptSyntaxError":
            yield* Console.log(`${name}: ${Terminal.escapeControls(e.txt)}`)
            return yield* Console.log(
              `syntax error at ${e.position}: ${Terminal.escapeControls(e.reason)}; RFC 8460 §3: the domain does not implement TLSRPT, its results are discarded`
            )
          case "TlsrptTemporaryError":
            return yield* new CommandError({
              reason: `${name}: temporary DNS error (${e.code}); the results would be kept and retried`
            })
        }
      }
      const found = outcome.right
      yield* Console.log(`${name}: ${Terminal.escapeControls(found.txt)}`)
      const destinations = TlsrptRecord.destinations(found.record)
      const now = new Date(yield* Clock.currentTimeMillis)
      // The round's own selection (docs/design.md#reporting-destinations): cap, each address once, https, suppression.
      const https = config.reports.https
      const { to, urls } = Destinations.select(destinations, { https })
      const suppressed = yield* withStore(
        config,
        Effect.flatMap(ResultStore, (s) =>
          Effect.filter([...to.map((a) => a.normalized), ...urls], (t) => s.isSuppressed(t, now))
        )
      )
      const lines = Destinations.select(destinations, {
        https,
        isSuppressed: (t) => suppressed.includes(t)
      }).choices.map((c) => [c.destination.uri, Destinations.explain(c, { httpsSetting: "reports.https" })])
      if (lines.length === 0) return yield* Console.log("no reporting destinations")
      yield* Console.log(Table.render(["destination", "what would be done"], lines))
    })
  ).pipe(Command.withDescription("Show a domain's TLSRPT record, its destinations and what would be done with them"))

  const parse = Command.make("parse", { file: Args.text({ name: "FILE" }) }, (args) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = NodePath.resolve(environment.cwd, args.file)
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

  return root.pipe(
    Command.withDescription("TLS reporting (RFC 8460) for outgoing mail"),
    Command.withSubcommands([
      worker,
      init,
      importCommand,
      record,
      send,
      results,
      outbox.pipe(Command.withSubcommands([outboxRetry])),
      suppress,
      lookup,
      parse
    ])
  )
}

/** Runs the CLI on `argv` (as `process.argv`: node, script, args…). */
export const run = (argv: ReadonlyArray<string>, environment: CliEnvironment) =>
  Command.run(makeCommands(environment), { name: "tlsrpt", version: VERSION })(argv)
