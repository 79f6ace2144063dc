/**
 * The real bin as a child process: exit codes, one-line errors, atomic JSON-lines input, the
 * store-backed commands, and the worker on the embedded default with a clean SIGTERM.
 */
import * as NodePath from "node:path"
import { gzipSync } from "node:zlib"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type BinResult, runBin, startBin } from "./Bin.js"
import { importRow, jsonLines as lines, tempDir as temporaryDir, write } from "./Fixtures.js"

const tempDir = temporaryDir("tlsrpt-cli-")

/** Exactly one non-empty line on stderr. */
const oneLine = (r: BinResult): string => {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "")
  assert.strictEqual(lines.length, 1, `expected one error line, got: ${r.stderr}`)
  return lines[0]!
}

const row = (day: string, policyDomain: string, failure = 1) =>
  importRow(policyDomain, {
    day,
    policyString: ["version: STSv1", "mode: enforce"],
    mxHost: ["mx.example.com"],
    success: 10,
    failure,
    receivingMx: "mx.example.com"
  })

const outcome = (recipientDomain: string, result: "success" | "failure") => ({
  timestamp: "2024-01-09T10:00:00Z",
  recipientDomain,
  mxHost: `mx.${recipientDomain}`,
  policies: [
    {
      type: "sts",
      policyLines: ["version: STSv1", "mode: enforce", `mx: mx.${recipientDomain}`, "max_age: 86400"],
      mxPatterns: [`mx.${recipientDomain}`],
      result
    }
  ]
})

describe("tlsrpt bin", () => {
  it.scoped(
    "bad config → exit 2 and one line naming the key (missing key file, bad URL, unknown key)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        yield* write(
          dir,
          "missing-key.json",
          JSON.stringify({
            submitter: { domain: "example.com" },
            dkim: [{ domain: "example.com", selector: "tlsrpt", privateKeyFile: "nope.pem", algorithm: "rsa-sha256" }]
          })
        )
        yield* write(dir, "bad-url.json", JSON.stringify({ transport: { type: "smtp", url: "smtp//relay:25" } }))
        yield* write(dir, "unknown-key.json", JSON.stringify({ http: { listen: "127.0.0.1:0", tokn: "x" } }))
        const [missingKey, badUrl, unknownKey, fromEnv, noFile] = yield* Effect.all(
          [
            runBin(["worker", "--config", "missing-key.json"], { cwd: dir }),
            runBin(["--config", "bad-url.json", "worker"], { cwd: dir }),
            runBin(["results"], { cwd: dir, env: { TLSRPT_CONFIG: "unknown-key.json" } }),
            runBin(["results"], { cwd: dir, env: { TLSRPT_HTTP_LISTEN: "everywhere" } }),
            runBin(["outbox", "--config", "absent.json"], { cwd: dir })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(missingKey.code, 2)
        assert.match(oneLine(missingKey), /^tlsrpt: config: dkim\[0\]\.privateKeyFile: .*nope\.pem/)
        assert.strictEqual(badUrl.code, 2)
        assert.match(oneLine(badUrl), /^tlsrpt: config: transport\.url: /)
        assert.strictEqual(unknownKey.code, 2)
        assert.strictEqual(oneLine(unknownKey), "tlsrpt: config: http.tokn: unknown key")
        assert.strictEqual(fromEnv.code, 2)
        assert.match(oneLine(fromEnv), /^tlsrpt: config: http\.listen \(from TLSRPT_HTTP_LISTEN\): /)
        assert.strictEqual(noFile.code, 2)
        assert.match(oneLine(noFile), /^tlsrpt: config: --config: cannot read .*absent\.json/)
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )

  it.scoped(
    "import and record are atomic: a bad line → exit 1 naming it, nothing stored; then good input is stored",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        yield* write(
          dir,
          "bad.jsonl",
          lines([row("2024-01-09", "example.com"), { ...row("2024-01-09", "b.example"), day: "yesterday" }])
        )
        const bad = yield* runBin(["import", "bad.jsonl"], { cwd: dir })
        assert.strictEqual(bad.code, 1)
        assert.match(oneLine(bad), /^tlsrpt: line 2: day: /)
        const badOutcomes = yield* runBin(["record", "-"], {
          cwd: dir,
          stdin: lines([outcome("example.com", "success"), { ...outcome("example.com", "failure"), policies: [] }])
        })
        assert.strictEqual(badOutcomes.code, 1)
        assert.match(oneLine(badOutcomes), /^tlsrpt: line 2: /)
        const empty = yield* runBin(["results", "--json"], { cwd: dir })
        assert.strictEqual(empty.code, 0)
        assert.deepStrictEqual(JSON.parse(empty.stdout), [])

        const good = yield* runBin(["import", "-"], {
          cwd: dir,
          stdin: lines([row("2024-01-09", "example.com"), row("2024-01-10", "b.example", 0)])
        })
        assert.strictEqual(good.code, 0, good.stderr)
        assert.strictEqual(good.stdout.trim(), "imported 2 rows")
        const recorded = yield* runBin(["record", "-"], {
          cwd: dir,
          stdin: lines([outcome("c.example", "success"), outcome("c.example", "failure")])
        })
        assert.strictEqual(recorded.code, 0, recorded.stderr)
        assert.match(recorded.stdout, /^recorded 2 session outcomes/)

        const [all, filtered, table] = yield* Effect.all(
          [
            runBin(["results", "--json"], { cwd: dir }),
            runBin(["results", "--day", "2024-01-09", "--domain", "C.Example", "--json"], { cwd: dir }),
            runBin(["results"], { cwd: dir })
          ],
          { concurrency: "unbounded" }
        )
        const rows = JSON.parse(all.stdout) as ReadonlyArray<{
          policyDomain: string
          day: string
          success: number
          failure: number
        }>
        assert.deepStrictEqual(rows.map((r) => [r.day, r.policyDomain]).sort(), [
          ["2024-01-09", "c.example"],
          ["2024-01-09", "example.com"],
          ["2024-01-10", "b.example"]
        ])
        const c = JSON.parse(filtered.stdout) as ReadonlyArray<{
          policyDomain: string
          success: number
          failure: number
        }>
        assert.deepStrictEqual(
          c.map((r) => [r.policyDomain, r.success, r.failure]),
          [["c.example", 1, 1]]
        )
        assert.match(table.stdout, /^day\s+policy domain\s+recipient domain/)
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )

  it.scoped(
    "suppress add / list / remove; outbox; parse; usage errors are one line, exit 1",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const added = yield* runBin(
          ["suppress", "add", "Reports@Example.COM", "--until", "2031-02-03T04:05:06Z", "--comment", "bounces"],
          { cwd: dir }
        )
        assert.strictEqual(added.code, 0, added.stderr)
        assert.strictEqual(added.stdout.trim(), "suppressed reports@example.com until 2031-02-03T04:05:06Z")
        const list = yield* runBin(["suppress", "list", "--json"], { cwd: dir })
        assert.deepStrictEqual(
          (JSON.parse(list.stdout) as ReadonlyArray<{ address: string; until: string; comment: string }>).map((s) => [
            s.address,
            s.until,
            s.comment
          ]),
          [["reports@example.com", "2031-02-03T04:05:06.000Z", "bounces"]]
        )
        const removed = yield* runBin(["suppress", "remove", "reports@example.com"], { cwd: dir })
        assert.strictEqual(removed.code, 0, removed.stderr)
        const again = yield* runBin(["suppress", "remove", "reports@example.com"], { cwd: dir })
        assert.strictEqual(again.code, 1)
        assert.strictEqual(oneLine(again), "tlsrpt: reports@example.com is not on the suppression list")

        const report = {
          "organization-name": "Sender Org",
          "date-range": { "start-datetime": "2024-01-09T00:00:00Z", "end-datetime": "2024-01-09T23:59:59Z" },
          "contact-info": "postmaster@sender.example",
          "report-id": "20240109.example.com@sender.example",
          policies: [row("2024-01-09", "example.com").results[0]]
        }
        const fs = yield* FileSystem.FileSystem
        yield* fs.writeFile(NodePath.join(dir, "r.json.gz"), gzipSync(JSON.stringify(report)))
        // A report from the field with a result type outside the IANA list (Stalwart sends "Other").
        const fromField = {
          ...report,
          policies: [
            { ...report.policies[0], "failure-details": [{ "result-type": "Other", "failed-session-count": 3 }] }
          ]
        }
        yield* fs.writeFile(NodePath.join(dir, "other.json"), new TextEncoder().encode(JSON.stringify(fromField)))
        const [parsed, parsedOther, httpsAdded, outbox, badUntil, badDay, extra, help] = yield* Effect.all(
          [
            runBin(["parse", "r.json.gz"], { cwd: dir }),
            runBin(["parse", "other.json"], { cwd: dir }),
            runBin(["suppress", "add", "HTTPS://Reports.Example:443/tlsrpt", "--until", "2031-02-03T04:05:06Z"], {
              cwd: dir
            }),
            runBin(["outbox", "--json"], { cwd: dir }),
            runBin(["suppress", "add", "a@example.com", "--until", "tomorrow"], { cwd: dir }),
            runBin(["send", "--day", "2024-02-30"], { cwd: dir }),
            runBin(["results", "surplus"], { cwd: dir }),
            runBin(["send", "--help"], { cwd: dir })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(parsed.code, 0, parsed.stderr)
        assert.deepStrictEqual(JSON.parse(parsed.stdout)["report-id"], "20240109.example.com@sender.example")
        assert.deepStrictEqual(JSON.parse(parsed.stdout).policies[0].policy["mx-host"], ["mx.example.com"])
        assert.strictEqual(parsedOther.code, 0, parsedOther.stderr)
        assert.deepStrictEqual(JSON.parse(parsedOther.stdout).policies[0]["failure-details"], [
          { "result-type": "Other", "failed-session-count": 3 }
        ])
        assert.strictEqual(httpsAdded.code, 0, httpsAdded.stderr)
        assert.strictEqual(
          httpsAdded.stdout.trim(),
          "suppressed https://reports.example/tlsrpt until 2031-02-03T04:05:06Z"
        )
        assert.deepStrictEqual(JSON.parse(outbox.stdout), [])
        assert.strictEqual(badUntil.code, 1)
        assert.match(oneLine(badUntil), /^tlsrpt: --until: /)
        assert.strictEqual(badDay.code, 1)
        assert.match(oneLine(badDay), /^tlsrpt: --day: /)
        assert.strictEqual(extra.code, 1)
        assert.match(oneLine(extra), /unknown argument/)
        assert.strictEqual(help.code, 0)
        assert.include(help.stdout, "--spread")
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )

  it.scoped(
    "outbox retry: --failed or one ID; an unknown ID or no argument is one line, exit 1",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const [retryAll, retryOne, retryUsage] = yield* Effect.all(
          [
            runBin(["outbox", "retry", "--failed"], { cwd: dir }),
            runBin(["outbox", "retry", "5"], { cwd: dir }),
            runBin(["outbox", "retry"], { cwd: dir })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(retryAll.code, 0, retryAll.stderr)
        assert.strictEqual(retryAll.stdout.trim(), "no failed messages")
        assert.strictEqual(retryOne.code, 1)
        assert.strictEqual(oneLine(retryOne), "tlsrpt: outbox retry: no failed or queued message with id 5")
        assert.strictEqual(retryUsage.code, 1)
        assert.strictEqual(oneLine(retryUsage), "tlsrpt: outbox retry: give either an ID or --failed")
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )

  it.scoped(
    "worker on the embedded default: data in ./data, refuses to send with one log line, SIGTERM → exit 0",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const worker = yield* startBin(["worker"], { cwd: dir, env: { TLSRPT_HTTP_LISTEN: "127.0.0.1:0" } })
        const listening = yield* worker.waitFor(/admin HTTP listening on (http:\/\/127\.0\.0\.1:\d+)/)
        const base = listening[1]!
        const health = yield* Effect.promise(() => fetch(`${base}/healthz`))
        assert.strictEqual(health.status, 200)
        const fs = yield* FileSystem.FileSystem
        const token = (yield* fs.readFileString(NodePath.join(dir, "data", "admin-token"))).trim()
        const status = yield* Effect.promise(() =>
          fetch(`${base}/api/status`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json())
        )
        assert.deepStrictEqual(status, {
          sending: false,
          reason: "no submitter configured (submitter.domain); run `tlsrpt init --domain D`",
          transport: `dir ${NodePath.join(dir, "data", "outbox")}`
        })
        assert.isTrue(yield* fs.exists(NodePath.join(dir, "data", "tlsrpt.db")))

        // Issue 11.2: a second worker on the same data directory refuses before it does anything.
        const second = yield* runBin(["worker"], { cwd: dir, env: { TLSRPT_HTTP_LISTEN: "127.0.0.1:0" } })
        assert.strictEqual(second.code, 1)
        assert.strictEqual(
          oneLine(second),
          `tlsrpt: another tlsrpt worker (pid ${worker.child.pid}) runs on this data directory (${NodePath.join(dir, "data", "worker.lock")}); stop it first, or remove the file if that process is not a worker`
        )
        assert.notInclude(second.stdout, "tlsrpt worker starting")
        assert.notInclude(second.stdout, "admin HTTP listening")

        worker.child.kill("SIGTERM")
        const exit = yield* worker.exited
        assert.deepStrictEqual(exit, { code: 0, signal: null })
        assert.isFalse(yield* fs.exists(NodePath.join(dir, "data", "worker.lock")))
        // Logs: JSON lines (stdout is a pipe), one of them the refusal to send.
        const logs = worker
          .stdout()
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { message: string; logLevel: string })
        const refusal = logs.filter((l) => l.message.startsWith("reports: not sending"))
        assert.strictEqual(refusal.length, 1)
        assert.strictEqual(refusal[0]!.logLevel, "WARN")
        assert.strictEqual(logs[logs.length - 1]!.message, "tlsrpt worker stopped")
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )
})
