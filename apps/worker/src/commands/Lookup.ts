/** `tlsrpt lookup DOMAIN`: a domain's TLSRPT record, its destinations and what would be done with each. */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { TlsrptRecord } from "@tlsrpt/core"
import { TlsrptLookup } from "@tlsrpt/dns"
import { Destinations } from "@tlsrpt/reporter"
import { SuppressionList } from "@tlsrpt/store"
import { Clock, Console, Effect, Either } from "effect"
import * as Layers from "../Layers.js"
import * as Table from "../Table.js"
import * as Terminal from "../Terminal.js"
import { CommandError, configOption, loadConfig, parseDomain, withStore } from "./Root.js"

export const command = Command.make("lookup", { config: configOption, domain: Args.text({ name: "DOMAIN" }) }, (args) =>
  Effect.gen(function* () {
    const domain = yield* parseDomain("DOMAIN", args.domain)
    const config = yield* loadConfig(args.config)
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
      Effect.flatMap(SuppressionList, (s) =>
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
