/**
 * The "done when": the real bin as child processes — `init`, a config pointing at a loopback
 * DNS server and a loopback SMTP relay, `import`, `send` — and a DKIM-signed report arrives and
 * verifies (mailauth, against the DKIM record `init` printed, published on the loopback DNS). A
 * domain whose TLSRPT lookup fails temporarily is kept for the next round and listed by `send`.
 */
import { promises as dnsPromises } from "node:dns"
import * as NodePath from "node:path"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ReportMessage } from "@tlsrpt/core"
import { DnsServer, SmtpSink } from "@tlsrpt/testkit"
import { Effect } from "effect"
import { dkimVerify } from "mailauth"
import { runBin } from "./Bin.js"
import { configurePeers, importRow, jsonLines, parseZoneLine, tempDir, write } from "./Fixtures.js"

const row = (policyDomain: string) =>
  importRow(policyDomain, {
    policyString: ["version: STSv1", "mode: enforce", `mx: mx.${policyDomain}`, "max_age: 86400"],
    mxHost: [`mx.${policyDomain}`],
    success: 12,
    failure: 2,
    receivingMx: `mx.${policyDomain}`,
    receivingIp: "192.0.2.25"
  })

describe("end to end through the bin", () => {
  it.scopedLive(
    "init → config (loopback DNS + SMTP) → import → send: a DKIM-signed report arrives and verifies",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* tempDir("tlsrpt-e2e-")
        const dns = yield* DnsServer.make({
          "_smtp._tls.example.org": ["v=TLSRPTv1; rua=mailto:tlsrpt@example.org"],
          "_smtp._tls.flaky.example": { rcode: "SERVFAIL" },
          // one address twice (two spellings), then more than MAX_DESTINATIONS in all
          "_smtp._tls.many.example": [
            `v=TLSRPTv1; rua=mailto:a@many.example,mailto:A@MANY.example,${Array.from({ length: 10 }, (_, i) => `mailto:r${i}@many.example`).join(",")}`
          ]
        })
        const smtp = yield* SmtpSink.make()

        const init = yield* runBin(["init", "--domain", "sender.example"], { cwd: dir })
        assert.strictEqual(init.code, 0, init.stderr)
        const records = init.stdout.split("\n").filter((l) => / IN TXT /.test(l))
        const dkimLine = records.find((l) => l.startsWith("tlsrpt._domainkey.sender.example. "))
        const tlsrptLine = records.find((l) => l.startsWith("_smtp._tls.sender.example. "))
        assert.isDefined(dkimLine, init.stdout)
        assert.isDefined(tlsrptLine, init.stdout)
        const [dkimName, dkimStrings] = parseZoneLine(dkimLine!)
        assert.match(dkimStrings.join(""), /^v=DKIM1; k=rsa; s=email:tlsrpt; p=[A-Za-z0-9+/=]+$/)
        assert.deepStrictEqual(parseZoneLine(tlsrptLine!)[1], ["v=TLSRPTv1; rua=mailto:tlsrpt@sender.example"])
        // Publish what init printed.
        yield* dns.set(dkimName, [dkimStrings])

        yield* configurePeers(dir, { dns: dns.address, smtp: smtp.url })

        yield* write(dir, "rows.jsonl", jsonLines([row("example.org"), row("flaky.example")]))
        const imported = yield* runBin(["--config", "tlsrpt.json", "import", "rows.jsonl"], { cwd: dir })
        assert.strictEqual(imported.code, 0, imported.stderr)

        const sent = yield* runBin(["send", "--config", "tlsrpt.json", "--day", "2024-01-09"], { cwd: dir })
        assert.strictEqual(sent.code, 0, sent.stderr)
        assert.match(sent.stdout, /1 reports, 1 messages queued/, `${sent.stdout}\n${sent.stderr}`)
        assert.match(sent.stdout, /delivery: 1 delivered, 0 to retry, 0 failed/)
        // The temporary DNS failure is kept and listed.
        assert.match(sent.stdout, /kept for the next round \(temporary errors\): 1\n\s+flaky\.example 2024-01-09/)

        const received = yield* smtp.received
        assert.strictEqual(received.length, 1)
        const mail = received[0]!
        assert.deepStrictEqual(mail.to, ["tlsrpt@example.org"])
        assert.strictEqual(mail.from, "postmaster@sender.example")

        // DKIM: verified with the key found in (loopback) DNS.
        const resolver = new dnsPromises.Resolver()
        resolver.setServers([dns.address])
        const verified = yield* Effect.promise(() =>
          dkimVerify(Buffer.from(mail.raw), {
            resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]>
          })
        )
        const pass = verified.results.filter((r) => r.status.result === "pass")
        assert.strictEqual(pass.length, 1, JSON.stringify(verified.results.map((r) => r.status)))
        assert.strictEqual(pass[0]!.signingDomain, "sender.example")
        assert.strictEqual(pass[0]!.selector, "tlsrpt")
        const signed = /\bh=([^;]+)/.exec(pass[0]!.info)?.[1] ?? ""
        const raw = Buffer.from(mail.raw).toString("utf8")
        const dkimHeader = /^DKIM-Signature:[\s\S]*?(?=\r\n\S)/im.exec(raw)?.[0].replace(/\s+/g, "") ?? ""
        assert.match(dkimHeader.toLowerCase(), /h=[^;]*tls-report-domain/, signed)
        assert.match(dkimHeader.toLowerCase(), /h=[^;]*tls-report-submitter/)

        // The report inside.
        const report = yield* ReportMessage.parse(mail.raw)
        assert.strictEqual(report.reportId, "20240109.example.org@sender.example")
        assert.strictEqual(report.policies[0]!.summary.totalFailureSessionCount, 2)

        // The outbox says delivered; the flaky domain's row is still stored for the next round; lookup and
        // parse on the same setup.
        yield* fs.writeFile(NodePath.join(dir, "report.eml"), mail.raw)
        const cli = (args: ReadonlyArray<string>) => runBin([...args, "--config", "tlsrpt.json"], { cwd: dir })
        const [outbox, flaky, lookup, lookupFlaky, parsed, lookupMany] = yield* Effect.all(
          [
            cli(["outbox", "--json"]),
            cli(["results", "--domain", "flaky.example", "--json"]),
            cli(["lookup", "example.org"]),
            cli(["lookup", "flaky.example"]),
            runBin(["parse", "report.eml"], { cwd: dir }),
            cli(["lookup", "many.example"])
          ],
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          (JSON.parse(outbox.stdout) as ReadonlyArray<{ status: string; destination: string }>).map((m) => [
            m.status,
            m.destination
          ]),
          [["delivered", "tlsrpt@example.org"]]
        )
        assert.strictEqual((JSON.parse(flaky.stdout) as ReadonlyArray<unknown>).length, 1)
        assert.strictEqual(lookup.code, 0, lookup.stderr)
        assert.include(lookup.stdout, "_smtp._tls.example.org: v=TLSRPTv1; rua=mailto:tlsrpt@example.org")
        assert.match(lookup.stdout, /mailto:tlsrpt@example\.org\s+mail a DKIM-signed report to tlsrpt@example\.org/)
        assert.strictEqual(lookupFlaky.code, 1)
        assert.match(lookupFlaky.stderr, /^tlsrpt: _smtp\._tls\.flaky\.example: temporary DNS error/m)
        // lookup shows what a round does (docs/design.md#destination-cap): each address once, the first 10 only
        assert.strictEqual(lookupMany.code, 0, lookupMany.stderr)
        assert.match(lookupMany.stdout, /mailto:A@MANY\.example\s+skip: a@many\.example is listed earlier/)
        assert.match(lookupMany.stdout, /mailto:r7@many\.example\s+mail a DKIM-signed report to r7@many\.example/)
        assert.match(lookupMany.stdout, /mailto:r8@many\.example\s+skip: only the first 10 usable destinations/)
        assert.strictEqual(lookupMany.stdout.match(/mail a DKIM-signed report/g)?.length, 9)
        assert.strictEqual(parsed.code, 0, parsed.stderr)
        assert.strictEqual(JSON.parse(parsed.stdout)["report-id"], "20240109.example.org@sender.example")
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )
})
