/**
 * MtaSts on real peers: `_mta-sts` records on the loopback DNS server, policies over HTTPS on
 * loopback with certificates from a test CA.
 */
import * as https from "node:https"
import type { LookupFunction } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { DnsServer, TestCa } from "@tlsrpt/testkit"
import { Effect } from "effect"
import { makeMtaSts } from "../src/index.js"

const loopback: LookupFunction = (_host, options, callback) => {
  if (typeof options === "object" && options.all) callback(null, [{ address: "127.0.0.1", family: 4 }])
  else callback(null, "127.0.0.1", 4)
}

const serve = (tls: TestCa.Leaf, bodies: Record<string, string>, hits: Array<string>) =>
  Effect.acquireRelease(
    Effect.async<https.Server>((resume) => {
      const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
        const host = (req.headers.host ?? "").replace(/:\d+$/, "")
        hits.push(host)
        const body = bodies[host]
        if (body === undefined) res.writeHead(404).end()
        else res.writeHead(200, { "content-type": "text/plain" }).end(body)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (s) =>
      Effect.async<void>((resume) => {
        s.close(() => resume(Effect.void))
      })
  )

const portOf = (s: https.Server) => {
  const a = s.address()
  return typeof a === "object" && a !== null ? a.port : 0
}

const GOOD = "version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n"

describe("MtaSts.policyFor", () => {
  it.scopedLive("fetches, caches by id, falls back to the cache, and classifies failures", () =>
    Effect.gen(function* () {
      const ca = yield* TestCa.make()
      const names = ["a", "bad", "none", "gone"].map((d) => `mta-sts.${d}.example`)
      const hits: Array<string> = []
      const bodies: Record<string, string> = {
        "mta-sts.a.example": GOOD,
        "mta-sts.bad.example": "version: STSv1\nmode: sometimes\n",
        "mta-sts.none.example": "version: STSv1\nmode: none\nmax_age: 86400\n"
      }
      const server = yield* serve(yield* ca.leaf(names), bodies, hits)
      const rogue = yield* serve(yield* ca.leaf(["mta-sts.rogue.example"], { untrusted: true }), bodies, [])
      const dns = yield* DnsServer.make({
        "_mta-sts.a.example": ["v=STSv1; id=1"],
        "_mta-sts.bad.example": ["v=STSv1; id=1"],
        "_mta-sts.none.example": ["v=STSv1; id=1"],
        "_mta-sts.two.example": ["v=STSv1; id=1", "v=STSv1; id=2"],
        "_mta-sts.flaky.example": { rcode: "SERVFAIL" }
      })
      const config = { dnsServers: [dns.address], ca: ca.ca, lookup: loopback, timeout: "2 seconds" as const }
      const sts = yield* makeMtaSts({ ...config, port: portOf(server) })

      const a = yield* sts.policyFor("a.example")
      assert.deepStrictEqual(a, {
        _tag: "Policy",
        policy: {
          mode: "enforce",
          lines: ["version: STSv1", "mode: enforce", "mx: mx.a.example", "max_age: 86400"],
          mx: ["mx.a.example"]
        }
      })
      // same id, not expired: from the cache, no second fetch (RFC 8461 §5.1)
      assert.deepStrictEqual(yield* sts.policyFor("A.example."), a)
      assert.deepStrictEqual(
        hits.filter((h) => h === "mta-sts.a.example"),
        ["mta-sts.a.example"]
      )
      // a new id whose policy cannot be fetched: the cached policy stays, with the failure
      yield* dns.set("_mta-sts.a.example", ["v=STSv1; id=2"])
      delete bodies["mta-sts.a.example"]
      assert.deepStrictEqual<unknown>(yield* sts.policyFor("a.example"), {
        ...a,
        failure: { resultType: "sts-policy-fetch-error", reasonCode: "no-policy-served+fallback-to-cached-policy" }
      })

      assert.deepStrictEqual(yield* sts.policyFor("bad.example"), {
        _tag: "Failed",
        failure: { resultType: "sts-policy-invalid", reasonCode: "policy-syntax-error" }
      })
      assert.deepStrictEqual(yield* sts.policyFor("none.example"), { _tag: "None" })
      assert.deepStrictEqual(yield* sts.policyFor("norecord.example"), { _tag: "None" })
      assert.deepStrictEqual(yield* sts.policyFor("two.example"), {
        _tag: "Failed",
        failure: { resultType: "sts-policy-fetch-error", reasonCode: "multiple-mta-sts-records" }
      })
      assert.deepStrictEqual(yield* sts.policyFor("flaky.example"), {
        _tag: "Failed",
        failure: { resultType: "sts-policy-fetch-error", reasonCode: "dns-lookup" }
      })

      // the policy host's certificate is not trusted: sts-webpki-invalid
      yield* dns.set("_mta-sts.rogue.example", ["v=STSv1; id=1"])
      const viaRogue = yield* makeMtaSts({ ...config, port: portOf(rogue) })
      assert.deepStrictEqual(yield* viaRogue.policyFor("rogue.example"), {
        _tag: "Failed",
        failure: { resultType: "sts-webpki-invalid", reasonCode: "certificate-not-trusted" }
      })
      // the policy host's certificate is from the trusted CA but for other names: host mismatch
      yield* dns.set("_mta-sts.x.example", ["v=STSv1; id=1"])
      assert.deepStrictEqual(yield* sts.policyFor("x.example"), {
        _tag: "Failed",
        failure: { resultType: "sts-webpki-invalid", reasonCode: "certificate-host-mismatch" }
      })
      // nothing listening: cannot-fetch-policy
      const closed = yield* makeMtaSts({ ...config, port: 1 })
      assert.deepStrictEqual(yield* closed.policyFor("bad.example"), {
        _tag: "Failed",
        failure: { resultType: "sts-policy-fetch-error", reasonCode: "cannot-fetch-policy" }
      })
    })
  )
})
