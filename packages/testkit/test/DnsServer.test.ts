import * as dgram from "node:dgram"
import { Resolver } from "node:dns"
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as packet from "dns-packet"
import { Effect, Exit, Scope } from "effect"
import * as DnsServer from "../src/DnsServer.js"

const resolver = (server: DnsServer.DnsServer, timeout = 2000, tries = 2): Resolver => {
  const r = new Resolver({ timeout, tries })
  r.setServers([server.address])
  return r
}

const resolveTxt = (server: DnsServer.DnsServer, name: string, timeout?: number, tries?: number) =>
  Effect.async<ReadonlyArray<ReadonlyArray<string>>, string>((resume) => {
    const r = resolver(server, timeout, tries)
    r.resolveTxt(name, (err, records) => resume(err ? Effect.fail(err.code ?? "unknown") : Effect.succeed(records)))
    return Effect.sync(() => r.cancel())
  })

const query = (name: string, type: packet.RecordType = "TXT"): Buffer =>
  packet.encode({ type: "query", id: 4242, flags: packet.RECURSION_DESIRED, questions: [{ type, name }] })

const udpExchange = (server: DnsServer.DnsServer, msg: Buffer) =>
  Effect.async<packet.DecodedPacket>((resume) => {
    const socket = dgram.createSocket("udp4")
    socket.on("message", (reply) => {
      socket.close()
      resume(Effect.succeed(packet.decode(reply)))
    })
    socket.send(msg, server.port, server.host)
    return Effect.sync(() => socket.close())
  })

const tcpExchange = (server: DnsServer.DnsServer, msg: Buffer) =>
  Effect.async<packet.DecodedPacket>((resume) => {
    const socket = net.connect({ port: server.port, host: server.host })
    let buffered = Buffer.alloc(0)
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        socket.destroy()
        resume(Effect.succeed(packet.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0)))))
      }
    })
    // Written in two pieces, cutting the message: the server must reassemble it by its length prefix.
    const prefix = Buffer.alloc(2)
    prefix.writeUInt16BE(msg.length)
    const framed = Buffer.concat([prefix, msg])
    socket.write(framed.subarray(0, 5))
    socket.write(framed.subarray(5))
    return Effect.sync(() => socket.destroy())
  })

// RFC 1035 §4.1.1: RCODE is the low 4 bits of the flags (dns-packet's types omit its `rcode`).
const RCODES: Record<number, string> = { 0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED" }
const rcode = (p: packet.DecodedPacket): string => RCODES[(p.flags ?? 0) & 0xf] ?? "OTHER"

const txtStrings = (p: packet.DecodedPacket): Array<Array<string>> =>
  (p.answers ?? []).flatMap((a) =>
    a.type === "TXT" ? [(Array.isArray(a.data) ? a.data : [a.data]).map((d) => d.toString())] : []
  )

const BIG = Array.from({ length: 6 }, (_, i) => `v=TLSRPTv1; rua=mailto:tlsrpt-${i}-${"x".repeat(100)}@big.example`)

describe("DnsServer", () => {
  it.scoped("answers TXT over UDP with several records and several strings per record", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({
        "_smtp._tls.a.example.": ["v=TLSRPTv1; rua=mailto:a@a.example", ["v=spf1 ", "-all"]]
      })
      assert.strictEqual(server.address, `127.0.0.1:${server.port}`)
      const reply = yield* udpExchange(server, query("_SMTP._tls.A.example"))
      assert.strictEqual(reply.id, 4242)
      assert.isTrue(reply.flag_qr)
      assert.isFalse(reply.flag_tc)
      assert.strictEqual(rcode(reply), "NOERROR")
      assert.deepStrictEqual(txtStrings(reply), [["v=TLSRPTv1; rua=mailto:a@a.example"], ["v=spf1 ", "-all"]])
      const records = yield* resolveTxt(server, "_smtp._tls.a.example")
      assert.sameDeepMembers(
        records.map((r) => [...r]),
        [["v=TLSRPTv1; rua=mailto:a@a.example"], ["v=spf1 ", "-all"]]
      )
    })
  )

  it.scoped("splits a long string into 255-octet character-strings", () =>
    Effect.gen(function* () {
      const long = "y".repeat(300)
      const server = yield* DnsServer.make({ "long.example": [long] })
      const reply = yield* tcpExchange(server, query("long.example"))
      assert.deepStrictEqual(
        txtStrings(reply).map((r) => r.map((s) => s.length)),
        [[255, 45]]
      )
    })
  )

  it.scoped("scripted rcodes, unknown names and other types", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make(
        new Map<string, DnsServer.DnsAnswer>([
          ["fail.example", { rcode: "SERVFAIL" }],
          ["refused.example", { rcode: "REFUSED" }],
          ["nx.example", { rcode: "NXDOMAIN" }],
          ["txt.example", ["hello"]]
        ])
      )
      assert.strictEqual(rcode(yield* udpExchange(server, query("fail.example"))), "SERVFAIL")
      assert.strictEqual(rcode(yield* udpExchange(server, query("refused.example"))), "REFUSED")
      assert.strictEqual(rcode(yield* udpExchange(server, query("nx.example"))), "NXDOMAIN")
      assert.strictEqual(rcode(yield* udpExchange(server, query("unknown.example"))), "NXDOMAIN")
      const a = yield* udpExchange(server, query("txt.example", "A"))
      assert.strictEqual(rcode(a), "NOERROR")
      assert.deepStrictEqual(a.answers, [])
      // node's resolver maps them to its error codes, as the live Dns layer sees them.
      assert.strictEqual(yield* Effect.flip(resolveTxt(server, "fail.example", 500, 1)), "ESERVFAIL")
      assert.strictEqual(yield* Effect.flip(resolveTxt(server, "refused.example", 500, 1)), "EREFUSED")
      assert.strictEqual(yield* Effect.flip(resolveTxt(server, "unknown.example")), "ENOTFOUND")
      assert.strictEqual(yield* Effect.flip(resolveTxt(server, "empty.example")), "ENOTFOUND")
      yield* server.set("empty.example", [])
      assert.strictEqual(yield* Effect.flip(resolveTxt(server, "empty.example")), "ENODATA")
    })
  )

  it.scoped("truncates UDP answers over 512 octets; TCP gives the whole answer", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "big.example": BIG })
      const udp = yield* udpExchange(server, query("big.example"))
      assert.isTrue(udp.flag_tc)
      assert.deepStrictEqual(udp.answers, [])
      const tcp = yield* tcpExchange(server, query("big.example"))
      assert.isFalse(tcp.flag_tc)
      assert.deepStrictEqual(
        txtStrings(tcp).map((r) => r.join("")),
        BIG
      )
      // node's resolver retries the truncated answer over TCP by itself.
      const before = (yield* server.queries).length
      const records = yield* resolveTxt(server, "big.example")
      assert.sameMembers(
        records.map((r) => r.join("")),
        BIG
      )
      const transports = (yield* server.queries).slice(before).map((q) => q.transport)
      assert.deepStrictEqual(transports, ["udp", "tcp"])
    })
  )

  it.scoped("logs every query with its name as sent, type, transport and the client's port", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make()
      yield* udpExchange(server, query("_smtp._tls.XN--74H.example", "TXT"))
      yield* tcpExchange(server, query("mx.example", "MX"))
      const queries = yield* server.queries
      assert.deepStrictEqual(
        queries.map(({ clientPort: _, ...q }) => q),
        [
          { name: "_smtp._tls.XN--74H.example", type: "TXT", transport: "udp" },
          { name: "mx.example", type: "MX", transport: "tcp" }
        ]
      )
      for (const q of queries) assert.isTrue(q.clientPort > 0 && q.clientPort !== server.port, String(q.clientPort))
    })
  )

  it.scoped("set replaces and remove deletes answers while running", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "x.example": ["one"] })
      assert.deepStrictEqual(txtStrings(yield* udpExchange(server, query("x.example"))), [["one"]])
      yield* server.set("X.Example.", ["two", "three"])
      assert.deepStrictEqual(txtStrings(yield* udpExchange(server, query("x.example"))), [["two"], ["three"]])
      yield* server.remove("x.example")
      assert.strictEqual(rcode(yield* udpExchange(server, query("x.example"))), "NXDOMAIN")
    })
  )

  it.scoped("noAnswer never replies, so the resolver times out", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.make({ "silent.example": { noAnswer: true } })
      assert.strictEqual(yield* Effect.flip(resolveTxt(server, "silent.example", 100, 1)), "ETIMEOUT")
      const q = yield* server.queries
      assert.isTrue(q.length >= 1 && q.every((x) => x.name === "silent.example"))
    })
  )

  it.effect("closing the scope closes both sockets", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const server = yield* DnsServer.make({ "x.example": ["one"] }).pipe(Scope.extend(scope))
      assert.deepStrictEqual(txtStrings(yield* tcpExchange(server, query("x.example"))), [["one"]])
      yield* Scope.close(scope, Exit.void)
      const refused = yield* Effect.async<string>((resume) => {
        const socket = net.connect({ port: server.port, host: server.host })
        socket.on("connect", () => {
          socket.destroy()
          resume(Effect.succeed("connected"))
        })
        socket.on("error", (e: NodeJS.ErrnoException) => resume(Effect.succeed(e.code ?? "error")))
      })
      assert.strictEqual(refused, "ECONNREFUSED")
      // The UDP port is free again: binding it succeeds.
      const rebound = yield* Effect.async<boolean>((resume) => {
        const socket = dgram.createSocket("udp4")
        socket.on("error", () => resume(Effect.succeed(false)))
        socket.bind({ port: server.port, address: "127.0.0.1" }, () => {
          socket.close()
          resume(Effect.succeed(true))
        })
      })
      assert.isTrue(rebound)
    })
  )

  it.scoped("layer provides the server as a service", () =>
    Effect.gen(function* () {
      const server = yield* DnsServer.DnsServer
      assert.deepStrictEqual(txtStrings(yield* udpExchange(server, query("l.example"))), [["via layer"]])
    }).pipe(Effect.provide(DnsServer.layer({ "l.example": ["via layer"] })))
  )
})
