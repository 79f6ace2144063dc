/**
 * The datagram source on a real AF_UNIX SOCK_DGRAM socket in a temp directory, with a real datagram
 * client (node-unix-socket), the real Collector and the real SQLite store (`:memory:`). The datagrams
 * are libtlsrpt's own, byte for byte.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { type ResultRow, ResultStore, Store } from "@tlsrpt/store"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { DgramSocket } from "node-unix-socket"
import { Collector } from "../src/Collector.js"
import { DatagramSource, type DatagramSourceConfig } from "../src/DatagramSource.js"

/** The three datagrams libtlsrpt sent when captured (sts success, tlsa failure, no-policy-found failure). */
export const EXAMPLES = [
  '{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce","mx: *.mail.example.com","max_age: 86400"],"mx-host":["*.mail.example.com"],"t":0,"f":0}]}',
  '{"dpv": "1","d": "example.net","pr": "v=TLSRPTv1; rua=mailto:a@example.net,https://r.example.net/tlsrpt","policies":[{"policy-type":1,"policy-domain": "mx1.example.net","policy-string":["3 1 1 1F85...085D"],"failure-details":[{"c":304,"s": "192.0.2.1","n": "mx1.example.net","h": "250-mx1.example.net\\r\\n250 STARTTLS","r": "198.51.100.7","f": "tlsa \\"mismatch\\""}],"t":1,"f":1}]}',
  '{"dpv": "1","d": "example.org","pr": "v=TLSRPTv1;rua=mailto:r@example.org","policies":[{"policy-type":9,"failure-details":[{"c":201,"s": "192.0.2.1","n": "mx.example.org","r": "203.0.113.5"}],"t":1,"f":1}]}'
]

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tlsrpt-dgram-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const client = Effect.acquireRelease(
  Effect.sync(() => new DgramSocket()),
  (s) => Effect.sync(() => s.close())
)

const send = (c: DgramSocket, path: string, payload: string | Buffer) =>
  Effect.async<void, Error>((resume) => {
    const buf = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload
    c.sendTo(buf, 0, buf.length, path, (e) => resume(e === undefined ? Effect.void : Effect.fail(e)))
  })

/** Runs source + collector + store, sends the datagrams, closes the source's scope (as SIGTERM does), reads the rows. */
const run = (dir: string, payloads: ReadonlyArray<string | Buffer>, extra: Partial<DatagramSourceConfig> = {}) =>
  Effect.gen(function* () {
    const path = join(dir, "tlsrpt.sock")
    const storeCtx = yield* Layer.build(Store.layerMemory)
    const store = Context.get(storeCtx, ResultStore)
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(
      DatagramSource.layer({ socket: path, ...extra }).pipe(
        Layer.provideMerge(Collector.layer()),
        Layer.provide(Layer.succeedContext(storeCtx))
      ),
      scope
    )
    const c = yield* client
    for (const p of payloads) yield* send(c, path, p)
    // Closed before the source stops: node-unix-socket 0.2.7 closes every socket of the process
    // when a thread that loaded it (the source's receiver thread) ends (src/DatagramReceiverMain.ts).
    c.close()
    // Closing drains what the kernel queued (as at SIGTERM), then the Collector flushes.
    yield* Scope.close(scope, Exit.void)
    const stats = yield* Context.get(ctx, DatagramSource).stats
    const rows = yield* store.listResults()
    return { rows, stats, path }
  })

const byDomain = (rows: ReadonlyArray<ResultRow>, d: string) => {
  const row = rows.find((r) => r.policyDomain === d)
  assert.isDefined(row)
  return row!
}

describe("DatagramSource", () => {
  it.scoped("stores libtlsrpt's example datagrams as sys4 would count them", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const { rows } = yield* run(dir, EXAMPLES)
      assert.strictEqual(rows.length, 3)
      const com = byDomain(rows, "example.com")
      assert.strictEqual(com.recipientDomain, "example.com")
      assert.isFalse(com.isHost)
      assert.deepStrictEqual(com.results[0]!.policy, {
        policyType: "sts",
        policyString: ["version: STSv1", "mode: enforce", "mx: *.mail.example.com", "max_age: 86400"],
        policyDomain: "example.com",
        mxHost: ["*.mail.example.com"]
      })
      assert.deepStrictEqual(com.results[0]!.summary, { totalSuccessfulSessionCount: 1, totalFailureSessionCount: 0 })
      assert.deepStrictEqual(com.results[0]!.failureDetails, [])

      // TLSA: the row is the next-hop domain's; the policy keeps the DANE base domain as sent.
      const net = byDomain(rows, "example.net")
      assert.strictEqual(net.results[0]!.policy.policyType, "tlsa")
      assert.strictEqual(net.results[0]!.policy.policyDomain, "mx1.example.net")
      assert.deepStrictEqual(net.results[0]!.summary, { totalSuccessfulSessionCount: 0, totalFailureSessionCount: 1 })
      assert.deepStrictEqual(net.results[0]!.failureDetails, [
        {
          resultType: "tlsa-invalid",
          sendingMtaIp: "192.0.2.1",
          receivingMxHostname: "mx1.example.net",
          receivingMxHelo: "250-mx1.example.net\r\n250 STARTTLS",
          receivingIp: "198.51.100.7",
          failureReasonCode: 'tlsa "mismatch"',
          failedSessionCount: 1
        }
      ])

      // no-policy-found without policy-domain (Postfix before 3.11-20250924): `d` as sent.
      const org = byDomain(rows, "example.org")
      assert.strictEqual(org.results[0]!.policy.policyType, "no-policy-found")
      assert.strictEqual(org.results[0]!.policy.policyDomain, "example.org")
      assert.strictEqual(org.results[0]!.failureDetails[0]!.resultType, "starttls-not-supported")
    })
  )

  it.scoped("counts every policy of a datagram as a session, and aggregates repeats", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const two =
        '{"dpv": "1","d": "Example.COM.","pr": "v=TLSRPTv1; rua=mailto:t@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","t":0,"f":0},{"policy-type":1,"policy-domain": "example.com","policy-string":["3 1 1 AB"],"failure-details":[{"c":305}],"t":1,"f":1}]}'
      const { rows, stats } = yield* run(dir, [two, two, two])
      assert.strictEqual(stats.stored, 3)
      assert.strictEqual(rows.length, 1)
      const row = byDomain(rows, "example.com")
      assert.strictEqual(row.results.length, 2)
      assert.deepStrictEqual(row.results[0]!.summary, { totalSuccessfulSessionCount: 3, totalFailureSessionCount: 0 })
      assert.deepStrictEqual(row.results[1]!.summary, { totalSuccessfulSessionCount: 0, totalFailureSessionCount: 3 })
      assert.strictEqual(row.results[1]!.failureDetails[0]!.failedSessionCount, 3)
      assert.strictEqual(row.results[1]!.failureDetails[0]!.resultType, "dnssec-invalid")
    })
  )

  it.scoped(
    "repairs non-UTF-8 bytes, refuses junk, truncated JSON, wrong types and unknown codes, keeps a 60 KB datagram",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const invalidDir = join(dir, "invalid")
        mkdirSync(invalidDir)
        const raw = Buffer.concat([
          Buffer.from('{"d": "example.com","policies":[{"policy-type":2,"mx-host":["mx\xe9', "latin1"),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('.example.com"],"t":0,"f":0}]}')
        ])
        const big = JSON.stringify({
          dpv: "1",
          d: "big.example",
          policies: [
            { "policy-type": 2, "policy-string": Array.from({ length: 2600 }, (_, i) => `mx: m${i}.big.example`), f: 0 }
          ]
        })
        assert.isAbove(big.length, 60_000)
        const { rows, stats } = yield* run(
          dir,
          [
            raw,
            "junk",
            EXAMPLES[0]!.slice(0, 100),
            '{"d": "example.com","policies":[{"policy-type":"sts","f":0}]}',
            '{"d": "example.com","policies":[{"policy-type":2,"failure-details":[{"c":999}],"f":1}]}',
            '{"d": "example.com","policies":[]}',
            '{"dpv": "7","d": "future.example","policies":[{"policy-type":9,"f":0}]}',
            big
          ],
          { invalidDatagramDir: invalidDir }
        )
        assert.deepStrictEqual(stats, { stored: 2, repaired: 1, "invalid-json": 2, invalid: 3 })
        const repaired = byDomain(rows, "example.com")
        assert.deepStrictEqual(repaired.results[0]!.policy.mxHost, ["mx\ufffd\ufffd\ufffd.example.com"])
        assert.strictEqual(byDomain(rows, "future.example").results[0]!.summary.totalSuccessfulSessionCount, 1)
        assert.strictEqual(byDomain(rows, "big.example").results[0]!.policy.policyString.length, 2600)
        // Written out for inspection: the five refused datagrams, byte for byte.
        const dumped = readdirSync(invalidDir)
        assert.strictEqual(dumped.length, 5)
        const sizes = dumped.map((f) => statSync(join(invalidDir, f)).size)
        assert.include(sizes, 4) // "junk"
        assert.include(sizes, 100) // the truncated one
      })
  )

  it.scoped("counts and writes out every repeat of an invalid datagram (repeats cross the ring as a number)", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const invalidDir = join(dir, "invalid")
      // Valid JSON of the right shape whose `d` is not a domain name: refused when decoded, not before.
      const badDomain = '{"dpv": "1","d": "not a domain","policies":[{"policy-type":9,"f":0}]}'
      const { rows, stats } = yield* run(
        dir,
        ["junk", badDomain, "junk", EXAMPLES[0]!, badDomain, "junk", EXAMPLES[0]!],
        {
          invalidDatagramDir: invalidDir
        }
      )
      assert.deepStrictEqual(stats, { stored: 2, repaired: 0, "invalid-json": 3, invalid: 2 })
      assert.strictEqual(byDomain(rows, "example.com").results[0]!.summary.totalSuccessfulSessionCount, 2)
      const sizes = readdirSync(invalidDir)
        .map((f) => statSync(join(invalidDir, f)).size)
        .sort((a, b) => a - b)
      assert.deepStrictEqual(sizes, [4, 4, 4, badDomain.length, badDomain.length])
    })
  )

  it.scoped("replaces a stale socket file and refuses a socket another collector holds", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "tlsrpt.sock")
      // A stale socket: bound by a socket that is gone (its file remains, as after a crash).
      const stale = new DgramSocket()
      stale.bind(path)
      stale.close()
      assert.isTrue(statSync(path).isSocket())
      const { rows } = yield* run(dir, [EXAMPLES[0]!])
      assert.strictEqual(rows.length, 1)

      // A live one.
      const live = yield* client
      live.bind(path)
      const store = Layer.succeedContext(Context.make(ResultStore, {} as Context.Tag.Service<ResultStore>))
      const exit = yield* Layer.build(
        DatagramSource.layer({ socket: path }).pipe(Layer.provide(Layer.succeed(Collector, {} as never)))
      ).pipe(Effect.provide(store), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "SocketInUse")
      assert.isTrue(statSync(path).isSocket())

      // Not a socket at all: left alone.
      const file = join(dir, "file.sock")
      writeFileSync(file, "x")
      const other = yield* Layer.build(
        DatagramSource.layer({ socket: file }).pipe(Layer.provide(Layer.succeed(Collector, {} as never)))
      ).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(other))
      assert.isTrue(statSync(file).isFile())
    })
  )

  it.scopedLive("while the collector is full it stops reading: datagrams wait in the kernel, none is lost", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "tlsrpt.sock")
      // A store whose writes wait for the gate: the first flush holds, the buffer fills up.
      const gate = yield* Effect.makeLatch(false)
      const storeCtx = yield* Layer.build(Store.layerMemory)
      const store = Context.get(storeCtx, ResultStore)
      const held = Layer.succeed(ResultStore, {
        ...store,
        addResults: (rows) => Effect.zipRight(gate.await, store.addResults(rows))
      })
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(
        // The smallest ring (512 KiB, ~1,000 of these datagrams), so that it fills.
        DatagramSource.layer({ socket: path, ringBytes: 0 }).pipe(
          Layer.provideMerge(Collector.layer({ flushRows: 100, maxPendingKeys: 100, flushInterval: "1 hour" })),
          Layer.provide(held)
        ),
        scope
      )
      const c = yield* client
      const n = 3000
      let acked = 0
      for (let i = 0; i < n; i++) {
        const b = Buffer.from(EXAMPLES[0]!.replaceAll("example.com", `d${i}.example`), "utf8")
        // node-unix-socket queues a send the kernel refuses (EAGAIN) and retries it when writable.
        c.sendTo(b, 0, b.length, path, () => {
          acked++
        })
      }
      const pause = Effect.promise(() => new Promise((r) => setTimeout(r, 300)))
      let before = -1
      while (acked !== before) {
        before = acked
        yield* pause
      }
      // The kernel stopped taking datagrams: the source reads no more than the ring holds.
      assert.isBelow(acked, n)
      yield* gate.open
      while (acked < n) yield* pause
      c.close()
      yield* Scope.close(scope, Exit.void)
      const stats = yield* Context.get(ctx, DatagramSource).stats
      assert.strictEqual(stats.stored, n)
      const rows = yield* store.listResults()
      assert.strictEqual(rows.length, n)
    })
  )

  it.scoped("sets the socket's mode", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const path = join(dir, "tlsrpt.sock")
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        DatagramSource.layer({ socket: path, socketMode: 0o620, socketGroup: process.getgid!() }).pipe(
          Layer.provide(Collector.layer()),
          Layer.provide(Store.layerMemory)
        ),
        scope
      )
      assert.strictEqual(statSync(path).mode & 0o777, 0o620)
      assert.strictEqual(statSync(path).gid, process.getgid!())
      yield* Scope.close(scope, Exit.void)
    })
  )
})
