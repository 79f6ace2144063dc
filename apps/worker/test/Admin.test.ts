import { HttpClient, HttpClientRequest } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { type Day, Domain, PolicyResult } from "@tlsrpt/core"
import { Outbox, ResultStore, Store } from "@tlsrpt/store"
import { Effect } from "effect"
import type * as Admin from "../src/Admin.js"
import { adminTestServer, TOKEN } from "./AdminServer.js"

const TestServer = adminTestServer("no submitter configured", Store.layerMemory)

const authed = (req: HttpClientRequest.HttpClientRequest) => HttpClientRequest.bearerToken(req, TOKEN)

const getJson = (path: string) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const res = yield* client.execute(authed(HttpClientRequest.get(path)))
    return { status: res.status, body: yield* res.json }
  })

const seed = Effect.gen(function* () {
  const store = yield* ResultStore
  const d = Domain.unsafeMake
  yield* store.addResults([
    {
      policyDomain: d("example.com"),
      day: "2024-01-09" as Day.Day,
      recipientDomain: d("example.com"),
      isHost: false,
      sendReport: true,
      results: [PolicyResult.make("sts", "example.com", { success: 5, failure: 2 })]
    },
    {
      policyDomain: d("mx.example.com"),
      day: "2024-01-09" as Day.Day,
      recipientDomain: d("example.com"),
      isHost: true,
      sendReport: true,
      results: [PolicyResult.make("tlsa", "mx.example.com", { success: 5, failure: 2 })]
    },
    {
      policyDomain: d("other.example"),
      day: "2024-01-10" as Day.Day,
      recipientDomain: d("other.example"),
      isHost: false,
      sendReport: true,
      results: [PolicyResult.make("no-policy-found", "other.example", { success: 4 })]
    }
  ])
})

describe("Admin HTTP", () => {
  it.layer(TestServer)("server", (it) => {
    it.effect("/healthz answers without a token; everything else needs it", () =>
      Effect.gen(function* () {
        const client = yield* HttpClient.HttpClient
        const health = yield* client.get("/healthz")
        assert.strictEqual(health.status, 200)
        assert.strictEqual(yield* health.text, "ok\n")
        for (const path of ["/metrics", "/api/results", "/api/outbox", "/api/suppressions", "/"]) {
          const res = yield* client.get(path)
          assert.strictEqual(res.status, 401, path)
          assert.strictEqual(res.headers["www-authenticate"], 'Bearer realm="tlsrpt"')
        }
        const wrong = yield* client.execute(
          HttpClientRequest.get("/api/results").pipe(HttpClientRequest.bearerToken("nope"))
        )
        assert.strictEqual(wrong.status, 401)
      })
    )

    it.effect("the page opens with ?access_token= (RFC 6750 §2.3); the API does not accept it", () =>
      Effect.gen(function* () {
        const client = yield* HttpClient.HttpClient
        const page = yield* client.get(`/?access_token=${TOKEN}`)
        assert.strictEqual(page.status, 200)
        assert.include(yield* page.text, "<title>tlsrpt admin</title>")
        assert.strictEqual((yield* client.get(`/api/results?access_token=${TOKEN}`)).status, 401)
      })
    )

    it.effect("/metrics is Prometheus text", () =>
      Effect.gen(function* () {
        const client = yield* HttpClient.HttpClient
        const res = yield* client.execute(authed(HttpClientRequest.get("/metrics")))
        assert.strictEqual(res.status, 200)
        assert.match(res.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/)
        assert.match(yield* res.text, /# TYPE \w+ (counter|gauge|histogram)/)
      })
    )

    it.effect("results, summary per day (recipient-domain rows only), filters and a bad filter", () =>
      Effect.gen(function* () {
        yield* seed
        const all = yield* getJson("/api/results")
        assert.strictEqual(all.status, 200)
        const rows = all.body as ReadonlyArray<Admin.ApiResultRow>
        assert.strictEqual(rows.length, 3)
        const first = rows.find((r) => r.policyDomain === "example.com")!
        assert.strictEqual(first.success, 5)
        assert.strictEqual(first.failure, 2)
        assert.deepStrictEqual(first.policyTypes, ["sts"])
        assert.strictEqual((first.results[0] as { policy: { "policy-type": string } }).policy["policy-type"], "sts")

        const day = yield* getJson("/api/results?day=2024-01-10")
        assert.deepStrictEqual(
          (day.body as ReadonlyArray<Admin.ApiResultRow>).map((r) => r.policyDomain),
          ["other.example"]
        )
        const summary = yield* getJson("/api/summary")
        assert.deepStrictEqual(
          (summary.body as ReadonlyArray<Admin.ApiDaySummary>).map((d) => [d.day, d.success, d.failure]),
          [
            ["2024-01-09", 5, 2],
            ["2024-01-10", 4, 0]
          ]
        )
        const bad = yield* getJson("/api/results?day=2024-13-01")
        assert.strictEqual(bad.status, 400)
        assert.match((bad.body as { error: string }).error, /^day: /)
      })
    )

    it.effect("suppressions: add (normalised), list, remove; invalid input is 400, unknown is 404", () =>
      Effect.gen(function* () {
        const client = yield* HttpClient.HttpClient
        const post = (body: unknown) =>
          HttpClientRequest.post("/api/suppressions").pipe(
            HttpClientRequest.bodyUnsafeJson(body),
            authed,
            client.execute
          )
        const added = yield* post({
          address: "Reports@Bücher.example",
          until: "2030-01-01T00:00:00Z",
          comment: "bounces"
        })
        assert.strictEqual(added.status, 201)
        assert.strictEqual(((yield* added.json) as { address: string }).address, "reports@xn--bcher-kva.example")
        assert.strictEqual((yield* post({ address: "not an address", until: "2030-01-01T00:00:00Z" })).status, 400)
        assert.strictEqual((yield* post({ address: "a@example.com", until: "someday" })).status, 400)
        assert.strictEqual((yield* post({ nothing: true })).status, 400)

        const list = yield* getJson("/api/suppressions")
        assert.deepStrictEqual(
          (list.body as ReadonlyArray<{ address: string; comment: string }>).map((s) => [s.address, s.comment]),
          [["reports@xn--bcher-kva.example", "bounces"]]
        )
        const del = (address: string) =>
          client.execute(authed(HttpClientRequest.del(`/api/suppressions/${encodeURIComponent(address)}`)))
        assert.strictEqual((yield* del("reports@bücher.example")).status, 204)
        assert.strictEqual((yield* del("reports@bücher.example")).status, 404)
        assert.deepStrictEqual((yield* getJson("/api/suppressions")).body, [])

        // An https reporting URI, normalised; removed by any spelling.
        const url = yield* post({ address: "HTTPS://Reports.Example:443/tlsrpt", until: "2030-01-01T00:00:00Z" })
        assert.strictEqual(url.status, 201)
        assert.strictEqual(((yield* url.json) as { address: string }).address, "https://reports.example/tlsrpt")
        assert.strictEqual(
          (yield* post({ address: "http://reports.example/", until: "2030-01-01T00:00:00Z" })).status,
          400
        )
        assert.strictEqual((yield* del("https://REPORTS.example/tlsrpt")).status, 204)
        assert.deepStrictEqual((yield* getJson("/api/suppressions")).body, [])
      })
    )

    it.effect("outbox lists messages without payloads; status filter", () =>
      Effect.gen(function* () {
        yield* (yield* Outbox).enqueue([
          {
            kind: "mailto",
            destination: "tlsrpt@example.com",
            envelopeFrom: "postmaster@sender.example",
            payload: new Uint8Array(10),
            reportId: "20240109.example.com@sender.example",
            policyDomain: "example.com",
            day: "2024-01-09" as Day.Day
          }
        ])
        const res = yield* getJson("/api/outbox")
        const list = res.body as ReadonlyArray<Record<string, unknown>>
        assert.strictEqual(list.length, 1)
        assert.strictEqual(list[0]!.status, "queued")
        assert.strictEqual(list[0]!.size, 10)
        assert.isUndefined(list[0]!.payload)
        assert.deepStrictEqual((yield* getJson("/api/outbox?status=delivered")).body, [])
        assert.strictEqual((yield* getJson("/api/outbox?status=lost")).status, 400)
        assert.strictEqual((yield* getJson("/api/nothing")).status, 404)
      })
    )
  })
})
