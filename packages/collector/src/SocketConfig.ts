/**
 * The `collector` section of a configuration file, decoded into what the datagram source takes whole
 * (`DatagramSourceConfig`, for `DatagramSource.layer`): the libtlsrpt socket (Postfix
 * `smtp_tlsrpt_socket_name`), its mode and group, and where invalid datagrams are kept. Both paths
 * default into the data directory; `null` turns either off.
 */
import { join } from "node:path"
import { Schema } from "effect"
import type { DatagramSourceConfig } from "./DatagramSource.js"

const NonEmpty = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))

export const schema = Schema.Struct({
  /** `null`: not listening. */
  socket: Schema.optional(Schema.NullOr(NonEmpty)),
  socketMode: Schema.optional(
    Schema.String.pipe(Schema.pattern(/^0?[0-7]{3}$/, { message: () => 'expected an octal file mode such as "0660"' }))
  ),
  socketGroup: Schema.optional(Schema.Union(NonEmpty, Schema.Int.pipe(Schema.nonNegative()))),
  /** `null`: invalid datagrams are counted and logged, not kept. */
  invalidDatagramDir: Schema.optional(Schema.NullOr(NonEmpty))
})
export type Section = typeof schema.Type

/** The socket's settings; `socket` undefined: not listening. */
export interface Collector {
  readonly socket: string | undefined
  readonly socketMode: number
  readonly socketGroup: string | number | undefined
  readonly invalidDatagramDir: string | undefined
}

/** The MTA's group writes to the socket; nobody else (README: collector.socketMode). */
export const DEFAULT_SOCKET_MODE = "0660"
export const DEFAULT_SOCKET = "tlsrpt.sock"
export const DEFAULT_INVALID_DATAGRAM_DIR = "invalid-datagrams"

/**
 * The section over the defaults. `path` makes a path the section gave absolute (the caller knows
 * what it is relative to: the file's directory, or the working directory for an environment variable).
 */
export const resolve = (
  section: Section = {},
  options: {
    readonly dataDir: string
    readonly path: (key: "socket" | "invalidDatagramDir", path: string) => string
  }
): Collector => {
  const where = (key: "socket" | "invalidDatagramDir", fallback: string) => {
    const given = section[key]
    return given === null ? undefined : given === undefined ? join(options.dataDir, fallback) : options.path(key, given)
  }
  return {
    socket: where("socket", DEFAULT_SOCKET),
    socketMode: Number.parseInt(section.socketMode ?? DEFAULT_SOCKET_MODE, 8),
    socketGroup: section.socketGroup,
    invalidDatagramDir: where("invalidDatagramDir", DEFAULT_INVALID_DATAGRAM_DIR)
  }
}

/** What `DatagramSource.layer` takes, or undefined when the socket is off. */
export const sourceConfig = (collector: Collector): DatagramSourceConfig | undefined =>
  collector.socket === undefined ? undefined : { ...collector, socket: collector.socket }
