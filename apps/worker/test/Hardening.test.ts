/**
 * Issue 11: what a hostile-input and operator-error probe broke, each reproduced through the real bin
 * (points 3, 5, 6, 7, 8, 9).
 */
import { createServer } from "node:net"
import * as NodePath from "node:path"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import { DnsServer } from "@tlsrpt/testkit"
import { Effect } from "effect"
import { type BinResult, runBin, startBin } from "./Bin.js"
import { importRow, jsonLines as lines, tempDir as temporaryDir } from "./Fixtures.js"

const tempDir = temporaryDir("tlsrpt-hard-")

const errorLine = (r: BinResult): string => {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("{") && !l.includes("level="))
  assert.strictEqual(lines.length, 1, `expected one error line, got: ${r.stderr}`)
  return lines[0]!
}

const TODAY = new Date().toISOString().slice(0, 10)
const TOKEN = "hardening-token-0123456789"

const row = (policyDomain: string, success: number) => importRow(policyDomain, { day: TODAY, success })

const isRoot = process.getuid?.() === 0
/** `nobody`: as root, file permissions only bind another user. */
const asOther = isRoot ? { uid: 65534, gid: 65534 } : {}

const startWorker = (dir: string, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const worker = yield* startBin(["worker"], {
      cwd: dir,
      env: { TLSRPT_HTTP_LISTEN: "127.0.0.1:0", TLSRPT_HTTP_TOKEN: TOKEN, ...env }
    })
    const base = (yield* worker.waitFor(/admin HTTP listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
    const get = (path: string) =>
      Effect.promise(() => fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } }))
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      Effect.promise(() =>
        fetch(`${base}${path}`, {
          method: "POST",
          body,
          headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json", ...headers }
        })
      )
    return { worker, get, post }
  })

describe("issue 11: hardening", () => {
  it.scoped(
    "point 3: counts of 2^53−1 are refused with the line; a stored count past 2^53 still lists (CLI and API)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const max = 2 ** 53 - 1
        const refused = yield* runBin(["import", "-"], {
          cwd: dir,
          stdin: lines([row("a.example", 5), row("b.example", max), row("b.example", max)])
        })
        assert.strictEqual(refused.code, 1)
        assert.match(
          errorLine(refused),
          /^tlsrpt: line 2: results\[0\]\.summary\.total-successful-session-count: 9007199254740991 is above the maximum of 1000000000$/
        )

        const good = yield* runBin(["import", "-"], { cwd: dir, stdin: lines([row("a.example", 5)]) })
        assert.strictEqual(good.code, 0, good.stderr)
        // A row summed past 2^53 before counts were bounded (or by another writer): it must still read.
        yield* Effect.gen(function* () {
          const sql = yield* SqliteClient.SqliteClient
          yield* sql`UPDATE results SET results = ${JSON.stringify([row("a.example", 2 ** 54).results[0]])}`
        }).pipe(Effect.provide(SqliteClient.layer({ filename: NodePath.join(dir, "data", "tlsrpt.db") })))

        const listed = yield* runBin(["results", "--json"], { cwd: dir })
        assert.strictEqual(listed.code, 0, listed.stderr)
        assert.strictEqual(JSON.parse(listed.stdout)[0].success, max)
        const table = yield* runBin(["results"], { cwd: dir })
        assert.strictEqual(table.code, 0, table.stderr)

        const { get } = yield* startWorker(dir)
        const results = yield* get("/api/results")
        assert.strictEqual(results.status, 200)
        const body = (yield* Effect.promise(() => results.json())) as Array<{
          success: number
          results: Array<{ summary: Record<string, number> }>
        }>
        assert.strictEqual(body[0]!.success, max)
        assert.strictEqual(body[0]!.results[0].summary["total-successful-session-count"], max)
        const summary = yield* get("/api/summary")
        assert.strictEqual(summary.status, 200)
      }).pipe(Effect.provide(NodeContext.layer)),
    240_000
  )

  it.scoped(
    "point 5: secret files readable by others → warning, refused with --strict; a weak admin-token is rewritten 0600",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const fs = yield* FileSystem.FileSystem
        const init = yield* runBin(["init", "--domain", "example.com"], { cwd: dir })
        assert.strictEqual(init.code, 0, init.stderr)
        const key = NodePath.join(dir, "dkim", "tlsrpt.example.com.rsa.pem")
        yield* fs.chmod(key, 0o644)
        yield* fs.makeDirectory(NodePath.join(dir, "data"))
        const tokenFile = NodePath.join(dir, "data", "admin-token")
        yield* fs.writeFileString(tokenFile, "short\n", { mode: 0o644 })
        yield* fs.chmod(tokenFile, 0o644)
        const env = { TLSRPT_CONFIG: "tlsrpt.json" }
        const [strict, lax] = yield* Effect.all(
          [
            runBin(["send", "--day", TODAY, "--strict"], { cwd: dir, env }),
            runBin(["send", "--day", TODAY], { cwd: dir, env })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(strict.code, 2)
        assert.match(
          errorLine(strict),
          /^tlsrpt: config: dkim\[0\]\.privateKeyFile: .*tlsrpt\.example\.com\.rsa\.pem is accessible by group or others \(mode 0644\); chmod 600 it \(--strict\)$/
        )
        assert.strictEqual(lax.code, 0, lax.stderr)
        assert.include(lax.stderr, "secret file: ")

        // The worker on the embedded default (no http.token: it uses data/admin-token) replaces the short token 0600.
        const worker = yield* startBin(["worker"], { cwd: dir, env: { TLSRPT_HTTP_LISTEN: "127.0.0.1:0" } })
        yield* worker.waitFor(/admin HTTP listening on/)
        assert.strictEqual((yield* fs.stat(tokenFile)).mode & 0o777, 0o600)
        assert.isAbove((yield* fs.readFileString(tokenFile)).trim().length, 16)
      }).pipe(Effect.provide(NodeContext.layer)),
    240_000
  )

  it.scoped(
    "point 6: busy port, corrupt and read-only databases, a host name in dns.servers: one line naming the thing",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const fs = yield* FileSystem.FileSystem
        yield* fs.chmod(dir, 0o755)
        yield* fs.makeDirectory(NodePath.join(dir, "corrupt"))
        yield* fs.writeFileString(
          NodePath.join(dir, "corrupt", "tlsrpt.db"),
          "this is not a SQLite file at all\n".repeat(8)
        )
        const made = yield* runBin(["import", "-"], {
          cwd: dir,
          env: { TLSRPT_DATA_DIR: "ro" },
          stdin: lines([row("a.example", 1)])
        })
        assert.strictEqual(made.code, 0, made.stderr)
        yield* fs.chmod(NodePath.join(dir, "ro"), 0o555)
        yield* fs.chmod(NodePath.join(dir, "ro", "tlsrpt.db"), 0o444)
        // A port held by another listener.
        const busy = yield* Effect.acquireRelease(
          Effect.async<import("node:net").Server>((resume) => {
            const server = createServer()
            server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
          }),
          (server) => Effect.sync(() => server.close())
        )
        const port = (busy.address() as import("node:net").AddressInfo).port
        const [corrupt, readOnly, portInUse, hostName] = yield* Effect.all(
          [
            runBin(["results"], { cwd: dir, env: { TLSRPT_DATA_DIR: "corrupt" } }),
            runBin(["import", "-"], {
              cwd: dir,
              env: { TLSRPT_DATA_DIR: "ro" },
              stdin: lines([row("b.example", 1)]),
              ...asOther
            }),
            runBin(["worker"], {
              cwd: dir,
              env: { TLSRPT_HTTP_LISTEN: `127.0.0.1:${port}`, TLSRPT_HTTP_TOKEN: TOKEN, TLSRPT_DATA_DIR: "w" }
            }),
            runBin(["lookup", "example.com"], { cwd: dir, env: { TLSRPT_DNS_SERVERS: "dns.example:53" } })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(corrupt.code, 1)
        assert.match(errorLine(corrupt), /corrupt\/tlsrpt\.db.*: file is not a database$/)
        assert.strictEqual(readOnly.code, 1)
        assert.match(errorLine(readOnly), /ro\/tlsrpt\.db.*: attempt to write a readonly database$/)
        assert.strictEqual(portInUse.code, 1)
        assert.strictEqual(
          errorLine(portInUse),
          `tlsrpt: http.listen: cannot listen on 127.0.0.1:${port}: the address is already in use (another tlsrpt worker or program?)`
        )
        assert.strictEqual(hostName.code, 2)
        assert.match(
          errorLine(hostName),
          /^tlsrpt: config: dns\.servers\[0\] \(from TLSRPT_DNS_SERVERS\): expected an IP address/
        )
      }).pipe(Effect.provide(NodeContext.layer)),
    240_000
  )

  it.scoped(
    "point 7: suppression body limit and strict until, init --selector, future days, bounded durations",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const tomorrow2 = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10)
        const [selector, futureSend, futureRecord, jitter, window] = yield* Effect.all(
          [
            runBin(["init", "--domain", "example.com", "--selector", "../../etc/x"], { cwd: dir }),
            runBin(["send", "--day", tomorrow2], { cwd: dir }),
            runBin(["record", "-"], {
              cwd: dir,
              stdin: lines([
                {
                  timestamp: `${tomorrow2}T10:00:00Z`,
                  recipientDomain: "example.com",
                  mxHost: "mx.example.com",
                  policies: [
                    {
                      type: "sts",
                      policyLines: ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"],
                      mxPatterns: ["mx.example.com"],
                      result: "success"
                    }
                  ]
                }
              ])
            }),
            runBin(["results"], { cwd: dir, env: { TLSRPT_REPORTS_JITTER_MAX: "30d" } }),
            runBin(["results"], { cwd: dir, env: { TLSRPT_REPORTS_WINDOW: "25h" } })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(selector.code, 1)
        assert.match(errorLine(selector), /^tlsrpt: init: --selector: expected a DKIM selector/)
        assert.strictEqual(futureSend.code, 1)
        assert.match(errorLine(futureSend), /^tlsrpt: --day: day \d{4}-\d{2}-\d{2} is in the future/)
        assert.strictEqual(futureRecord.code, 1)
        assert.match(errorLine(futureRecord), /^tlsrpt: line 1: timestamp: day \d{4}-\d{2}-\d{2} is in the future/)
        assert.strictEqual(jitter.code, 2)
        assert.match(
          errorLine(jitter),
          /^tlsrpt: config: reports\.jitterMax \(from TLSRPT_REPORTS_JITTER_MAX\): expected a duration between/
        )
        assert.strictEqual(window.code, 2)
        assert.match(errorLine(window), /^tlsrpt: config: reports\.window /)

        const { post, get } = yield* startWorker(dir)
        const huge = yield* post(
          "/api/suppressions",
          JSON.stringify({ address: "a@example.com", until: "2030-01-01", comment: "x".repeat(100_000) })
        )
        assert.strictEqual(huge.status, 413)
        for (const until of ["1", "2024-02-30", "May 5 2030", "2030-01-01T25:00Z"]) {
          const r = yield* post("/api/suppressions", JSON.stringify({ address: "a@example.com", until }))
          assert.strictEqual(r.status, 400, until)
        }
        const ok = yield* post("/api/suppressions", JSON.stringify({ address: "a@example.com", until: "2030-01-01" }))
        assert.strictEqual(ok.status, 201)
        const listed = yield* get("/api/suppressions")
        const list = (yield* Effect.promise(() => listed.json())) as Array<{ until: string }>
        assert.deepStrictEqual(
          list.map((s) => s.until),
          ["2030-01-01T00:00:00.000Z"]
        )
      }).pipe(Effect.provide(NodeContext.layer)),
    240_000
  )

  it.scoped(
    "point 8: lookup and suppress list print control characters escaped; point 9: non-loopback admin warns",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const dns = yield* DnsServer.make({
          "_smtp._tls.example.com": ["v=TLSRPTv1; rua=mailto:a@example.com\u001b]0;owned\u0007\u001b[2J"]
        })
        const added = yield* runBin(
          ["suppress", "add", "b@example.com", "--until", "2030-01-01", "--comment", "hi\u001b[31mred\u202eevil"],
          { cwd: dir }
        )
        assert.strictEqual(added.code, 0, added.stderr)
        const [lookup, list, exposed] = yield* Effect.all(
          [
            runBin(["lookup", "example.com"], { cwd: dir, env: { TLSRPT_DNS_SERVERS: dns.address } }),
            runBin(["suppress", "list"], { cwd: dir }),
            // TEST-NET-1 (RFC 5737) is not on this machine: the bind fails, after the warning; nothing is sent.
            runBin(["worker"], {
              cwd: dir,
              env: { TLSRPT_HTTP_LISTEN: "192.0.2.1:0", TLSRPT_HTTP_TOKEN: TOKEN, TLSRPT_DATA_DIR: "w" }
            })
          ],
          { concurrency: "unbounded" }
        )
        for (const out of [lookup.stdout, list.stdout]) {
          const raw = [...out].filter((c) => c !== "\n" && (c < " " || c === "\u007f" || c === "\u202e"))
          assert.deepStrictEqual(raw, [])
        }
        assert.include(lookup.stdout, "\\x1b]0;owned\\x07\\x1b[2J")
        assert.include(list.stdout, "hi\\x1b[31mred\\u{202e}evil")
        assert.include(exposed.stdout, "admin HTTP listens on 192.0.2.1, not loopback")
        assert.strictEqual(exposed.code, 1)
        assert.match(
          errorLine(exposed),
          /^tlsrpt: http\.listen: cannot listen on 192\.0\.2\.1:0: the address is not on this machine$/
        )
      }).pipe(Effect.provide(NodeContext.layer)),
    240_000
  )
})
