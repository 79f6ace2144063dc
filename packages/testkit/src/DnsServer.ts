/**
 * A loopback DNS server for tests (dns-packet): UDP and TCP on one ephemeral port, answering TXT
 * queries from a zone the test can change, with scripted failures (NXDOMAIN, SERVFAIL, REFUSED, no
 * reply at all). UDP answers over 512 octets are truncated (TC=1, RFC 1035 §4.2.1) so a resolver
 * must retry over TCP (RFC 7766), which is what the live `Dns` layer is tested against.
 */
import * as dgram from "node:dgram"
import * as net from "node:net"
import { Context, Effect, Layer, type Scope } from "effect"
import * as packet from "dns-packet"

/**
 * TXT records at a name: a string is one record (its UTF-8 bytes split into 255-octet
 * character-strings), an array is one record of those character-strings. `Uint8Array`s are sent as
 * they are, so a test can serve bytes that are not UTF-8.
 */
export type TxtRecords = ReadonlyArray<string | Uint8Array | ReadonlyArray<string | Uint8Array>>

/** What the server answers for a name. */
export type DnsAnswer =
  | TxtRecords
  | { readonly rcode: "NXDOMAIN" | "SERVFAIL" | "REFUSED" }
  /** Never replies, over UDP or TCP: the resolver must time out. */
  | { readonly noAnswer: true }

export type Zone = Readonly<Record<string, DnsAnswer>> | ReadonlyMap<string, DnsAnswer>

export interface DnsQuery {
  /** The name as received (no trailing dot), case preserved. */
  readonly name: string
  readonly type: string
  readonly transport: "udp" | "tcp"
  /** The client's source port: one resolver socket serving many queries shows as one port. */
  readonly clientPort: number
}

export interface DnsServer {
  readonly host: "127.0.0.1"
  readonly port: number
  /** `127.0.0.1:<port>`, for `Dns.layer({ servers: [address] })`. */
  readonly address: string
  /** Sets (or replaces) the answer at a name; names match case-insensitively, with or without the final dot. */
  readonly set: (name: string, answer: DnsAnswer) => Effect.Effect<void>
  /** Removes a name: it then answers NXDOMAIN. */
  readonly remove: (name: string) => Effect.Effect<void>
  /** Every query received so far, in arrival order. */
  readonly queries: Effect.Effect<ReadonlyArray<DnsQuery>>
}

export const DnsServer = Context.GenericTag<DnsServer>("@tlsrpt/testkit/DnsServer")

/** RFC 1035 §4.2.1: the classic UDP payload limit; EDNS sizes are deliberately ignored. */
export const UDP_MAX = 512
const TTL = 300

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const

const normalizeName = (name: string): string => {
  const lower = name.toLowerCase()
  return lower.endsWith(".") ? lower.slice(0, -1) : lower
}

// RFC 1035 §3.3.14: a TXT record is one or more <character-string>s of at most 255 octets.
const characterStrings = (record: TxtRecords[number]): Array<Buffer> => {
  if (typeof record !== "string" && !(record instanceof Uint8Array)) return record.map((s) => Buffer.from(s))
  const bytes = Buffer.from(record)
  const chunks: Array<Buffer> = []
  for (let o = 0; o < bytes.length; o += 255) chunks.push(bytes.subarray(o, o + 255))
  return chunks.length === 0 ? [Buffer.alloc(0)] : chunks
}

type Reply = Buffer | undefined

const respond = (zone: Map<string, DnsAnswer>, query: packet.DecodedPacket, transport: "udp" | "tcp"): Reply => {
  const question = query.questions?.[0]
  const base = {
    type: "response" as const,
    id: query.id ?? 0,
    questions: query.questions ?? []
  }
  // Keep RD as asked; we are authoritative for everything we know.
  const flagsFor = (rcode: number) =>
    packet.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & packet.RECURSION_DESIRED) | rcode
  if (question === undefined) return packet.encode({ ...base, flags: flagsFor(RCODE.FORMERR) })
  const answer = zone.get(normalizeName(question.name))
  if (answer === undefined) return packet.encode({ ...base, flags: flagsFor(RCODE.NXDOMAIN) })
  if ("noAnswer" in answer) return undefined
  if ("rcode" in answer) return packet.encode({ ...base, flags: flagsFor(RCODE[answer.rcode]) })
  const answers: Array<packet.Answer> =
    question.type === "TXT"
      ? answer.map((record) => ({
          type: "TXT",
          class: "IN",
          name: question.name,
          ttl: TTL,
          data: characterStrings(record)
        }))
      : []
  const full = packet.encode({ ...base, flags: flagsFor(RCODE.NOERROR), answers })
  if (transport === "udp" && full.length > UDP_MAX) {
    return packet.encode({ ...base, flags: flagsFor(RCODE.NOERROR) | packet.TRUNCATED_RESPONSE })
  }
  return full
}

const toZoneMap = (zone: Zone | undefined): Map<string, DnsAnswer> => {
  const entries: Iterable<readonly [string, DnsAnswer]> =
    zone === undefined ? [] : zone instanceof Map ? zone.entries() : Object.entries(zone)
  return new Map([...entries].map(([name, answer]) => [normalizeName(name), answer] as const))
}

interface Sockets {
  readonly udp: dgram.Socket
  readonly tcp: net.Server
  readonly connections: Set<net.Socket>
  readonly port: number
}

const closeAll = (s: Omit<Sockets, "port">): Promise<void> =>
  new Promise((resolve) => {
    for (const c of s.connections) c.destroy()
    let pending = 2
    const done = () => {
      pending--
      if (pending === 0) resolve()
    }
    try {
      s.udp.close(done)
    } catch {
      done()
    }
    if (s.tcp.listening) s.tcp.close(() => done())
    else done()
  })

const bindUdp = (): Promise<dgram.Socket> =>
  new Promise((resolve, reject) => {
    const udp = dgram.createSocket("udp4")
    udp.once("error", reject)
    udp.bind({ port: 0, address: "127.0.0.1" }, () => {
      udp.off("error", reject)
      resolve(udp)
    })
  })

const listenTcp = (tcp: net.Server, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    tcp.once("error", reject)
    tcp.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      tcp.off("error", reject)
      resolve()
    })
  })

const start = async (zone: Map<string, DnsAnswer>, log: Array<DnsQuery>): Promise<Sockets> => {
  const handle = (msg: Buffer, transport: "udp" | "tcp", clientPort: number): Reply => {
    let query: packet.DecodedPacket
    try {
      query = packet.decode(msg)
    } catch {
      return undefined
    }
    for (const q of query.questions ?? []) log.push({ name: q.name, type: q.type, transport, clientPort })
    return respond(zone, query, transport)
  }
  // UDP first on an ephemeral port, then TCP on the same number; another process may hold that
  // TCP port, so try again with a fresh UDP port.
  let lastError: unknown
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = await bindUdp()
    const connections = new Set<net.Socket>()
    const tcp = net.createServer((socket) => {
      connections.add(socket)
      let buffered = Buffer.alloc(0)
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk])
        // RFC 1035 §4.2.2: each message is prefixed by its two-octet length.
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const length = buffered.readUInt16BE(0)
          const reply = handle(buffered.subarray(2, 2 + length), "tcp", socket.remotePort ?? 0)
          buffered = buffered.subarray(2 + length)
          if (reply !== undefined) {
            const prefix = Buffer.alloc(2)
            prefix.writeUInt16BE(reply.length)
            socket.write(Buffer.concat([prefix, reply]))
          }
        }
      })
      socket.on("error", () => socket.destroy())
      socket.on("close", () => connections.delete(socket))
    })
    const port = udp.address().port
    try {
      await listenTcp(tcp, port)
    } catch (e) {
      lastError = e
      await closeAll({ udp, tcp, connections })
      continue
    }
    udp.on("message", (msg, rinfo) => {
      const reply = handle(msg, "udp", rinfo.port)
      if (reply !== undefined) udp.send(reply, rinfo.port, rinfo.address)
    })
    udp.on("error", () => {})
    return { udp, tcp, connections, port }
  }
  throw lastError
}

/** Starts the server on loopback; both sockets close when the scope closes. */
export const make = (zone?: Zone): Effect.Effect<DnsServer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const records = toZoneMap(zone)
    const log: Array<DnsQuery> = []
    const sockets = yield* Effect.acquireRelease(
      Effect.promise(() => start(records, log)),
      (s) => Effect.promise(() => closeAll(s))
    )
    return {
      host: "127.0.0.1",
      port: sockets.port,
      address: `127.0.0.1:${sockets.port}`,
      set: (name, answer) =>
        Effect.sync(() => {
          records.set(normalizeName(name), answer)
        }),
      remove: (name) =>
        Effect.sync(() => {
          records.delete(normalizeName(name))
        }),
      queries: Effect.sync(() => [...log])
    } satisfies DnsServer
  })

/** The server as a Layer, for `it.layer` and for building a `Dns.layer` on top. */
export const layer = (zone?: Zone): Layer.Layer<DnsServer> => Layer.scoped(DnsServer, make(zone))
