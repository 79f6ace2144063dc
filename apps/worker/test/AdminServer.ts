/**
 * The admin app on `NodeHttpServer.layerTest` (an `HttpClient` aimed at it), with a bearer token,
 * metrics and a status line, over the services a test gives it (a store, a collector).
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Layer, Redacted } from "effect"
import * as Admin from "../src/Admin.js"
import { Metrics } from "../src/Metrics.js"

export const TOKEN = "test-token-0123456789abcdef"

/** `reason`: why the status line says reports are not sent. */
export const adminTestServer = <ROut, E>(reason: string, services: Layer.Layer<ROut, E>) =>
  HttpServer.serve(Admin.app).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(
      Layer.mergeAll(
        Metrics.layerEffectOnly,
        Layer.succeed(Admin.AdminSettings, {
          token: Redacted.make(TOKEN),
          status: { sending: false, reason, transport: "dir /tmp/outbox" }
        })
      )
    ),
    Layer.provideMerge(services)
  )
