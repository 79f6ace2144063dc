/**
 * The production composition an Effect MTA adds to its own Layers (the README's embedding snippet,
 * region "layers"; test/Readme.test.ts keeps them equal). The example's test runs the same `deliver`
 * on the simulation kit's in-memory store and TestClock instead.
 */
import type { DkimKey, Submitter } from "@tlsrpt/mail"
import { Layer } from "effect"

// #region layers
import { Collector } from "@tlsrpt/collector"
import { Dns, TlsrptLookup } from "@tlsrpt/dns"
import { Delivery, ReportMail, Transport } from "@tlsrpt/mail"
import { MtaSts } from "@tlsrpt/outcome"
import { defaultConfig, ReporterLive, ReporterSchedule } from "@tlsrpt/reporter"
import { Store } from "@tlsrpt/store"

export const TlsReporting = (submitter: Submitter, dkim: ReadonlyArray<DkimKey>) =>
  Layer.mergeAll(
    Collector.layer(), // flushes every 1 s or 25,000 keys
    ReporterSchedule.layer(defaultConfig), // the supervised daily round
    Delivery.layer(), // the outbox delivery loop
    MtaSts.layer() // MTA-STS policies, fetched and cached
  ).pipe(
    Layer.provideMerge(ReporterLive.layer(defaultConfig)),
    Layer.provide([
      TlsrptLookup.layerCached().pipe(Layer.provide(Dns.layer())),
      ReportMail.layer({ submitter, dkim }),
      Transport.layerSmtp({ url: "smtp://127.0.0.1:25" })
    ]),
    Layer.provideMerge(Store.layer({ filename: "/var/lib/mta/tlsrpt.db" }))
  )
// #endregion layers
