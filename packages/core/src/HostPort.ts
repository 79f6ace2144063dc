/**
 * A `host:port` address as configuration writes it (`127.0.0.1:8470`, `[::1]:53`, with a default port
 * a bare host), decoded by a Schema: the DNS servers, the admin listener and a fleet runner's address
 * are all spelled this way.
 */
import { Either, ParseResult, Schema } from "effect"

export interface HostPort {
  readonly host: string
  readonly port: number
}

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/

/** `host:port` or `[v6]:port`; `defaultPort` allows a bare host. */
export const parse = (s: string, defaultPort?: number): Either.Either<HostPort, string> => {
  const m = HOST_PORT.exec(s)
  if (m !== null) {
    const port = Number(m[3])
    if (port > 65535) return Either.left(`port out of range in ${JSON.stringify(s)}`)
    return Either.right({ host: m[1] ?? m[2]!, port })
  }
  if (defaultPort !== undefined && /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+|[0-9a-fA-F:]+)$/.test(s) && s.length > 0) {
    return Either.right({ host: s.replace(/^\[|\]$/g, ""), port: defaultPort })
  }
  return Either.left(`expected "host:port", got ${JSON.stringify(s)}`)
}

/** `host:port`, with an IPv6 host in brackets (as node:dns `setServers` and URLs take it). */
export const format = (hp: HostPort): string =>
  hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`

/** The string form decoded to a `HostPort`; `defaultPort` allows a bare host. */
export const schema = (defaultPort?: number) =>
  Schema.transformOrFail(
    Schema.String,
    Schema.Struct({ host: Schema.String, port: Schema.Number }) as Schema.Schema<HostPort>,
    {
      strict: true,
      decode: (s, _, ast) => Either.mapLeft(parse(s, defaultPort), (r) => new ParseResult.Type(ast, s, r)),
      encode: (hp) => ParseResult.succeed(format(hp))
    }
  )
