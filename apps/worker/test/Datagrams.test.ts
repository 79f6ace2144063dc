/**
 * Postfix/libtlsrpt into the real bin: `tlsrpt worker` on the embedded default socket
 * (`<dataDir>/tlsrpt.sock`), a real datagram client sends libtlsrpt's datagrams, SIGTERM, and
 * `tlsrpt results --json` holds every session; then `send` makes the round over what was stored, and
 * the report arrives DKIM-signed (verified against loopback DNS) with the policies as sent.
 */
import { promises as dnsPromises } from "node:dns"
import * as NodePath from "node:path"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Day, ReportMessage } from "@tlsrpt/core"
import { DnsServer, SmtpSink } from "@tlsrpt/testkit"
import { Effect } from "effect"
import { dkimVerify } from "mailauth"
import { DgramSocket } from "node-unix-socket"
import { runBin, startBin } from "./Bin.js"
import { configurePeers, parseZoneLine, tempDir } from "./Fixtures.js"

const sts = (d: string, failed: boolean) =>
  `{"dpv": "1","d": "${d}","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@${d}","policies":[{"policy-type":2,"policy-domain": "${d}","policy-string":["version: STSv1","mode: enforce","mx: *.mail.${d}","max_age: 86400"],"mx-host":["*.mail.${d}"],${failed ? `"failure-details":[{"c":202,"s": "192.0.2.1","n": "mx1.mail.${d}","r": "198.51.100.7"}],"t":1,"f":1` : `"t":0,"f":0`}}]}`
const TLSA =
  '{"dpv": "1","d": "example.net","pr": "v=TLSRPTv1; rua=mailto:a@example.net,https://r.example.net/tlsrpt","policies":[{"policy-type":1,"policy-domain": "mx1.example.net","policy-string":["3 1 1 1F85...085D"],"failure-details":[{"c":304,"s": "192.0.2.1","n": "mx1.example.net","h": "250-mx1.example.net\\r\\n250 STARTTLS","r": "198.51.100.7","f": "tlsa \\"mismatch\\""}],"t":1,"f":1}]}'

const send = (c: DgramSocket, path: string, payload: string) =>
  Effect.async<void, Error>((resume) => {
    const buf = Buffer.from(payload)
    c.sendTo(buf, 0, buf.length, path, (e) => resume(e === undefined ? Effect.void : Effect.fail(e)))
  })

describe("the worker hears libtlsrpt datagrams", () => {
  it.scopedLive(
    "datagrams → SIGTERM → all stored → a round reports them, DKIM-signed",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir("tlsrpt-dg-")
        const dns = yield* DnsServer.make({
          "_smtp._tls.example.net": ["v=TLSRPTv1; rua=mailto:tlsrpt@example.net"]
        })
        const smtp = yield* SmtpSink.make()
        const init = yield* runBin(["init", "--domain", "sender.example"], { cwd: dir })
        assert.strictEqual(init.code, 0, init.stderr)
        const dkimLine = init.stdout.split("\n").find((l) => l.startsWith("tlsrpt._domainkey.sender.example. "))!
        yield* dns.set("tlsrpt._domainkey.sender.example", [parseZoneLine(dkimLine)[1]])
        yield* configurePeers(dir, { dns: dns.address, smtp: smtp.url })

        const worker = yield* startBin(["worker", "--config", "tlsrpt.json"], { cwd: dir })
        yield* worker.waitFor(/listening for libtlsrpt datagrams/)
        const socketPath = NodePath.join(dir, "data", "tlsrpt.sock")
        const client = new DgramSocket()
        yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
        // 2,000 STS sessions over 20 domains, every 20th a failure, plus the DANE one and junk.
        const N = 2000
        for (let i = 0; i < N; i++) yield* send(client, socketPath, sts(`d${i % 20}.example`, i % 20 === 7))
        yield* send(client, socketPath, TLSA)
        yield* send(client, socketPath, "{not json")
        worker.child.kill("SIGTERM")
        const exit = yield* worker.exited
        assert.strictEqual(exit.code, 0, worker.stderr())
        assert.include(worker.stdout(), "datagram socket closed")

        const results = yield* runBin(["results", "--json", "--config", "tlsrpt.json"], { cwd: dir })
        assert.strictEqual(results.code, 0, results.stderr)
        const rows = JSON.parse(results.stdout) as ReadonlyArray<{
          policyDomain: string
          success: number
          failure: number
        }>
        const total = (f: (r: (typeof rows)[number]) => number) => rows.reduce((n, r) => n + f(r), 0)
        assert.strictEqual(
          total((r) => r.success + r.failure),
          N + 1
        )
        assert.strictEqual(
          total((r) => r.failure),
          N / 20 + 1
        )
        assert.strictEqual(rows.length, 21)
        assert.strictEqual(rows.find((r) => r.policyDomain === "d7.example")!.failure, N / 20)
        // The refused one is kept for inspection.
        assert.strictEqual((yield* fs.readDirectory(NodePath.join(dir, "data", "invalid-datagrams"))).length, 1)

        // The round over what was stored: only example.net publishes a TLSRPT record.
        const today = Day.fromMillis(Date.now())
        const sent = yield* runBin(["send", "--config", "tlsrpt.json", "--day", today], { cwd: dir })
        assert.strictEqual(sent.code, 0, sent.stderr)
        const received = yield* smtp.received
        assert.strictEqual(received.length, 1, sent.stdout)
        const mail = received[0]!
        assert.deepStrictEqual(mail.to, ["tlsrpt@example.net"])
        const resolver = new dnsPromises.Resolver()
        resolver.setServers([dns.address])
        const verified = yield* Effect.promise(() =>
          dkimVerify(Buffer.from(mail.raw), {
            resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]>
          })
        )
        assert.isTrue(verified.results.some((r) => r.status.result === "pass"))
        const report = yield* ReportMessage.parse(mail.raw)
        assert.strictEqual(report.policies.length, 1)
        const p = report.policies[0]!
        assert.strictEqual(p.policy.policyType, "tlsa")
        assert.strictEqual(p.policy.policyDomain, "mx1.example.net")
        assert.deepStrictEqual(p.policy.policyString, ["3 1 1 1F85...085D"])
        assert.deepStrictEqual(p.summary, { totalSuccessfulSessionCount: 0, totalFailureSessionCount: 1 })
        assert.strictEqual(p.failureDetails[0]!.resultType, "tlsa-invalid")
        assert.strictEqual(p.failureDetails[0]!.receivingMxHelo, "250-mx1.example.net\r\n250 STARTTLS")
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )
})
