/** `tlsrpt init`: a config file and a DKIM key pair, and the DNS records to publish (`../Init.ts`). */
import * as NodePath from "node:path"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect } from "effect"
import * as Config from "../Config.js"
import * as Init from "../Init.js"
import { CliEnvironment, configOption, configPath } from "./Root.js"

export const command = Command.make(
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
      const environment = yield* CliEnvironment
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
