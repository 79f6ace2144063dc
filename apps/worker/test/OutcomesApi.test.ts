/**
 * `POST /api/outcomes` on the real admin app over loopback HTTP, with the real Collector on the
 * SQLite store (`:memory:`).
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Collector } from "@tlsrpt/collector"
import { ResultStore, Store } from "@tlsrpt/store"
import { Effect, Layer } from "effect"
import { MAX_BODY_BYTES } from "../src/OutcomesApi.js"
import { adminTestServer, TOKEN } from "./AdminServer.js"

const TestServer = adminTestServer("test", Collector.layer().pipe(Layer.provideMerge(Store.layerMemory)))

const outcome = (domain: string, result: "success" | "failure") =>
  JSON.stringify({
    timestamp: "2026-01-15T10:00:00Z",
    recipientDomain: domain,
    mxHost: `mx.${domain}`,
    policies: [
      {
        type: "sts",
        result,
        policyLines: ["version: STSv1", "mode: enforce", `mx: mx.${domain}`, "max_age: 86400"],
        mxPatterns: [`mx.${domain}`],
        ...(result === "failure" ? { failureDetails: [{ resultType: "certificate-expired" }] } : {})
      }
    ]
  })

const post = (body: string, token = TOKEN) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const res = yield* client.execute(
      HttpClientRequest.post("/api/outcomes").pipe(
        HttpClientRequest.bearerToken(token),
        HttpClientRequest.bodyText(body, "application/jsonl")
      )
    )
    return { status: res.status, body: (yield* res.json) as Record<string, unknown> }
  })

describe("POST /api/outcomes", () => {
  it.layer(TestServer)("server", (it) => {
    it.effect("records JSON Lines of outcomes through the collector and answers {recorded, rows}", () =>
      Effect.gen(function* () {
        const res = yield* post(
          `${outcome("a.example", "success")}\n\n${outcome("a.example", "failure")}\n${outcome("b.example", "success")}\n`
        )
        assert.deepStrictEqual(res, { status: 200, body: { recorded: 3, rows: 3 } })
        yield* (yield* Collector).flush
        const rows = yield* (yield* ResultStore).listResults({ domain: "a.example" })
        assert.strictEqual(rows.length, 1)
        assert.deepStrictEqual(rows[0]!.results[0]!.summary, {
          totalSuccessfulSessionCount: 1,
          totalFailureSessionCount: 1
        })
      })
    )

    it.effect("refuses the whole body with 400 naming each bad line; nothing is stored", () =>
      Effect.gen(function* () {
        const res = yield* post(
          `${outcome("c.example", "success")}\nnot json\n${outcome("c.example", "success").replace('"sts"', '"dane"')}\n`
        )
        assert.strictEqual(res.status, 400)
        assert.strictEqual(res.body.badLines, 2)
        const lines = res.body.lines as ReadonlyArray<{ line: number; error: string }>
        assert.deepStrictEqual(
          lines.map((l) => l.line),
          [2, 3]
        )
        assert.include(lines[0]!.error, "not JSON")
        yield* (yield* Collector).flush
        assert.strictEqual((yield* (yield* ResultStore).listResults({ domain: "c.example" })).length, 0)
      })
    )

    it.effect("needs the bearer token; a body past the limit is 413", () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* post(outcome("d.example", "success"), "wrong-token-0123456789")).status, 401)
        const big = `${outcome("d.example", "success")}\n`.repeat(Math.ceil(MAX_BODY_BYTES / 200) + 10)
        assert.isAbove(big.length, MAX_BODY_BYTES)
        const res = yield* post(big)
        assert.strictEqual(res.status, 413)
        yield* (yield* Collector).flush
        assert.strictEqual((yield* (yield* ResultStore).listResults({ domain: "d.example" })).length, 0)
      })
    )
  })
})
