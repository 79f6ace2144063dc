/**
 * End to end: the admin page in headless Chromium (Debian's `chromium` driven by playwright-core)
 * against the real admin server on loopback and a seeded store, then a second one in fleet mode. Saves a screenshot into
 * `apps/worker/test-output/`. A missing Chromium fails the test: nothing is skipped.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { HttpServer } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Day, Domain, PolicyResult } from "@tlsrpt/core"
import type { ClusterStatus } from "@tlsrpt/fleet"
import { Outbox, ResultStore, Store, SuppressionList } from "@tlsrpt/store"
import { Context, Effect, Layer, Redacted, Schedule } from "effect"
import { chromium } from "playwright-core"
import * as Admin from "../src/Admin.js"
import { Metrics } from "../src/Metrics.js"

const CHROMIUM = "/usr/bin/chromium"
const OUTPUT = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../test-output")
const TOKEN = "page-test-token-0123456789"

const seed = Effect.gen(function* () {
  const store = yield* ResultStore
  const d = Domain.unsafeMake
  const rows = []
  for (let i = 0; i < 7; i++) {
    const day = Day.addDays("2024-01-03" as Day.Day, i)
    for (const [domain, failure] of [
      ["example.com", i % 3],
      ["bücher.example", i === 4 ? 6 : 0]
    ] as const) {
      rows.push({
        policyDomain: d(domain),
        day,
        recipientDomain: d(domain),
        isHost: false,
        sendReport: true,
        results: [
          PolicyResult.make("sts", d(domain).ascii, {
            success: 20 + i * 3,
            failure,
            failureDetails:
              failure > 0
                ? [
                    {
                      resultType: "certificate-expired",
                      receivingMxHostname: `mx.${d(domain).ascii}`,
                      failedSessionCount: failure
                    }
                  ]
                : []
          })
        ]
      })
    }
  }
  yield* store.addResults(rows)
  const message = (destination: string, day: string) => ({
    kind: "mailto" as const,
    destination,
    envelopeFrom: "postmaster@sender.example",
    payload: new Uint8Array(100),
    reportId: `${day.replaceAll("-", "")}.example.com@sender.example`,
    policyDomain: "example.com",
    day: day as Day.Day
  })
  const ids = yield* (yield* Outbox).enqueue([
    message("tlsrpt@example.com", "2024-01-07"),
    message("reports@example.com", "2024-01-08"),
    message("gone@example.com", "2024-01-09")
  ])
  const at = new Date("2024-01-10T00:05:00Z")
  yield* (yield* Outbox).markDelivered(ids[0]!, at)
  yield* (yield* Outbox).markAttemptFailed(ids[2]!, { error: "550 5.1.1 no such user", at, nextAttemptAt: undefined })
})

const Settings = Layer.succeed(Admin.AdminSettings, {
  token: Redacted.make(TOKEN),
  status: { sending: false, reason: "no submitter configured", transport: "dir /var/lib/tlsrpt/outbox" }
})

/** What `tlsrpt cluster status --json` gives for a fleet of two runners, one of them gone quiet. */
const clusterStatus: ClusterStatus.Status = {
  shards: 12,
  unowned: 0,
  runners: [
    {
      address: "10.0.0.1:34431",
      machineId: 1,
      healthy: true,
      alive: true,
      lastHeartbeat: "2024-01-10T00:06:00.000Z",
      shards: "1-12",
      shardCount: 12
    },
    {
      address: "10.0.0.2:34431",
      machineId: 2,
      healthy: true,
      alive: false,
      lastHeartbeat: "2024-01-10T00:01:00.000Z",
      shards: "",
      shardCount: 0
    }
  ],
  rounds: [
    { id: "send:1", day: "2024-01-09", state: "running" },
    { id: "daily:2024-01-09", day: "2024-01-09", state: "done", reports: 2, queued: 3, keys: 4, kept: 0 }
  ]
}

describe("admin page in Chromium", () => {
  it.scopedLive(
    "shows the chart, results, outbox; adds and removes a suppression; screenshot saved",
    () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(
          Admin.layer({ host: "127.0.0.1", port: 0 }).pipe(
            Layer.provideMerge(Layer.mergeAll(Store.layerMemory, Metrics.layerEffectOnly, Settings))
          )
        )
        yield* seed.pipe(Effect.provide(context))
        const address = Context.get(context, HttpServer.HttpServer).address
        assert.strictEqual(address._tag, "TcpAddress")
        const base = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : ""

        const userDataDir = yield* Effect.acquireRelease(
          Effect.sync(() => mkdtempSync(NodePath.join(tmpdir(), "tlsrpt-chromium-"))),
          (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
        )
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launchPersistentContext(userDataDir, {
              executablePath: CHROMIUM,
              headless: true,
              viewport: { width: 1200, height: 1400 },
              args: [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync"
              ]
            })
          ),
          (b) => Effect.promise(() => b.close())
        )
        const page = yield* Effect.promise(() => browser.newPage())
        page.setDefaultTimeout(15_000)
        // Polls the DOM (the page's CSP forbids the string evaluation waitForFunction would need).
        const waitForCount = (selector: string, n: number) =>
          Effect.promise(() => page.locator(selector).count()).pipe(
            Effect.filterOrFail(
              (count) => count === n,
              (count) => `${selector}: ${count} elements, expected ${n}`
            ),
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("15 seconds"))),
            Effect.orDie
          )
        const errors: Array<string> = []
        page.on("pageerror", (e) => errors.push(e.message))

        // Without a token the server refuses the page itself.
        const refused = yield* Effect.promise(() => page.goto(`${base}/`))
        assert.strictEqual(refused?.status(), 401)

        yield* Effect.promise(() => page.goto(`${base}/?access_token=${TOKEN}`))
        yield* Effect.promise(() => page.waitForSelector("body[data-loaded=true]"))
        // The token left the address bar.
        assert.notInclude(page.url(), "access_token")
        // a single-process worker has no cluster section
        assert.isTrue(yield* Effect.promise(() => page.locator("#cluster").isHidden()))
        assert.include(
          yield* Effect.promise(() => page.textContent("#status")),
          "Not sending reports: no submitter configured"
        )

        // Chart: one bar pair per day with the day's totals.
        assert.strictEqual(yield* Effect.promise(() => page.getAttribute("#chart", "data-days")), "7")
        const failures = yield* Effect.promise(() =>
          page.$$eval("#chart rect.bar-failure", (rects) => rects.map((r) => Number(r.getAttribute("data-value"))))
        )
        assert.deepStrictEqual(failures, [0, 1, 2, 0, 7, 2, 0])
        const successes = yield* Effect.promise(() =>
          page.$$eval("#chart rect.bar-success", (rects) => rects.map((r) => Number(r.getAttribute("data-value"))))
        )
        assert.deepStrictEqual(successes, [40, 46, 52, 58, 64, 70, 76])

        assert.strictEqual((yield* Effect.promise(() => page.$$("#results tbody tr[data-id]"))).length, 14)
        const statuses = yield* Effect.promise(() =>
          page.$$eval("#outbox tbody tr", (rows) => rows.map((r) => r.getAttribute("data-status")))
        )
        assert.deepStrictEqual([...statuses].sort(), ["delivered", "failed", "queued"])
        assert.include(yield* Effect.promise(() => page.textContent("#outbox")), "550 5.1.1 no such user")

        // Filter the results by domain (IDN input, A-label match).
        yield* Effect.promise(() => page.fill("#filter-domain", "bücher.example"))
        yield* Effect.promise(() => page.click("#filter-form button"))
        yield* waitForCount("#results tbody tr[data-id]", 7)
        yield* Effect.promise(() => page.fill("#filter-domain", ""))
        yield* Effect.promise(() => page.click("#filter-form button"))
        yield* waitForCount("#results tbody tr[data-id]", 14)

        // Add a suppression through the form.
        yield* Effect.promise(() => page.fill("#suppress-address", "Reports@Example.COM"))
        yield* Effect.promise(() => page.fill("#suppress-until", "2031-06-01T12:00"))
        yield* Effect.promise(() => page.fill("#suppress-comment", "mailbox full"))
        yield* Effect.promise(() => page.click("#suppress-add"))
        yield* Effect.promise(() => page.waitForSelector('#suppressions tr[data-address="reports@example.com"]'))
        const stored = yield* Context.get(context, SuppressionList).list
        assert.deepStrictEqual(
          stored.map((s) => [s.address, s.comment, s.until.getUTCFullYear()]),
          [["reports@example.com", "mailbox full", 2031]]
        )

        mkdirSync(OUTPUT, { recursive: true })
        const screenshot = NodePath.join(OUTPUT, "admin-page.png")
        yield* Effect.promise(() => page.screenshot({ path: screenshot, fullPage: true }))

        // Remove it again.
        yield* Effect.promise(() => page.click('button.remove[data-address="reports@example.com"]'))
        yield* Effect.promise(() =>
          page.waitForSelector('#suppressions tr[data-address="reports@example.com"]', { state: "detached" })
        )
        assert.deepStrictEqual(yield* Context.get(context, SuppressionList).list, [])

        // In fleet mode the page shows the cluster: runners, shard ownership, the last rounds.
        const fleet = yield* Layer.build(
          Admin.layer({ host: "127.0.0.1", port: 0 }).pipe(
            Layer.provideMerge(
              Layer.mergeAll(
                Store.layerMemory,
                Metrics.layerEffectOnly,
                Settings,
                Layer.succeed(Admin.AdminCluster, { status: Effect.succeed(clusterStatus) })
              )
            )
          )
        )
        const fleetAddress = Context.get(fleet, HttpServer.HttpServer).address
        const fleetBase = fleetAddress._tag === "TcpAddress" ? `http://127.0.0.1:${fleetAddress.port}` : ""
        yield* Effect.promise(() => page.goto(`${fleetBase}/?access_token=${TOKEN}`))
        yield* Effect.promise(() => page.waitForSelector("body[data-loaded=true]"))
        assert.isTrue(yield* Effect.promise(() => page.locator("#cluster").isVisible()))
        assert.include(yield* Effect.promise(() => page.textContent("#cluster-summary")), "12 shards, 2 runner(s)")
        const runners = yield* Effect.promise(() =>
          page.$$eval("#cluster-runners tbody tr", (rows) =>
            rows.map((r) => [
              r.getAttribute("data-address"),
              r.getAttribute("data-state"),
              ...Array.from(r.querySelectorAll("td"))
                .slice(3)
                .map((c) => (c as { readonly textContent: string | null }).textContent)
            ])
          )
        )
        assert.deepStrictEqual(runners, [
          ["10.0.0.1:34431", "up", "12", "1-12"],
          ["10.0.0.2:34431", "stale", "0", "–"]
        ])
        const rounds = yield* Effect.promise(() =>
          page.$$eval("#cluster-rounds tbody tr", (rows) =>
            rows.map((r) => [r.getAttribute("data-round"), r.getAttribute("data-state"), r.children[3]?.textContent])
          )
        )
        assert.deepStrictEqual(rounds, [
          ["send:1", "running", "–"],
          ["daily:2024-01-09", "done", "2"]
        ])
        yield* Effect.promise(() =>
          page.screenshot({ path: NodePath.join(OUTPUT, "admin-page-cluster.png"), fullPage: true })
        )

        assert.deepStrictEqual(errors, [])
        yield* Effect.log(`screenshot: ${screenshot}`)
      }),
    120_000
  )
})
