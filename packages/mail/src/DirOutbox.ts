/**
 * The outbox folder's format (`Transport.layerDir`): for each message `<id>-<destination>.eml` (the
 * raw mail) or `.json.gz` (an https body), and its `.json` envelope beside it. Plain functions on
 * node:fs, imported by the folder's writer thread (DirWriterMain.ts), which loads nothing else.
 *
 * A pair is written as two temporary files, then the payload renamed, then the envelope: a reader
 * never sees half a file, and the envelope's appearance means the pair is complete
 * (docs/design.md#transports).
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import { join } from "node:path"

/** What the folder keeps of an outbox message (plain data: it crosses to the writer thread). */
export interface DirMessage {
  readonly id: number
  readonly kind: "mailto" | "https"
  readonly destination: string
  readonly envelopeFrom: string
  readonly reportId: string
  readonly policyDomain: string
  readonly day: string
  readonly payload: Uint8Array
  /** The payload's media type, in the envelope of an https body (RFC 8460 §5.3: `application/tlsrpt+gzip`). */
  readonly contentType?: string | undefined
}

/** A file-name-safe form of an address or URL. */
const sanitize = (destination: string): string => destination.replace(/[^A-Za-z0-9@._-]/g, "_").slice(0, 120)

/** The names written for a message: the payload file and its `.json` envelope beside it. */
export const dirFileNames = (
  message: Pick<DirMessage, "id" | "kind" | "destination">
): { readonly payload: string; readonly envelope: string } => {
  const base = `${message.id}-${sanitize(message.destination)}`
  return { payload: message.kind === "mailto" ? `${base}.eml` : `${base}.json.gz`, envelope: `${base}.json` }
}

/** The envelope file's bytes: from, to, reportId, policyDomain, day, kind, the payload's name (and type). */
export const envelopeBytes = (message: DirMessage, payloadName: string): Buffer =>
  Buffer.from(
    `${JSON.stringify(
      {
        id: message.id,
        kind: message.kind,
        from: message.envelopeFrom,
        to: [message.destination],
        reportId: message.reportId,
        policyDomain: message.policyDomain,
        day: message.day,
        file: payloadName,
        ...(message.contentType === undefined ? {} : { contentType: message.contentType })
      },
      null,
      2
    )}\n`,
    "utf8"
  )

/**
 * A prefix for this thread's temporary names, drawn once: with a counter it keeps them unique without
 * a random draw per file (two writers on one folder get different prefixes).
 */
const tmpPrefix = randomBytes(6).toString("hex")
let tmpCounter = 0

const writeFileSync = (path: string, data: Uint8Array): void => {
  const fd = fs.openSync(path, "w", 0o666)
  try {
    for (let at = 0; at < data.byteLength; ) at += fs.writeSync(fd, data, at, data.byteLength - at)
  } finally {
    fs.closeSync(fd)
  }
}

const writePairSync = (dir: string, message: DirMessage): void => {
  const names = dirFileNames(message)
  const tmps: Array<string> = []
  try {
    for (const [name, data] of [
      [names.payload, message.payload],
      [names.envelope, envelopeBytes(message, names.payload)]
    ] as const) {
      const tmp = join(dir, `.${name}.${tmpPrefix}${(tmpCounter++).toString(36)}.tmp`)
      tmps.push(tmp)
      writeFileSync(tmp, data)
    }
    fs.renameSync(tmps[0]!, join(dir, names.payload))
    tmps.shift()
    fs.renameSync(tmps[0]!, join(dir, names.envelope))
    tmps.shift()
  } catch (e) {
    for (const tmp of tmps) fs.rmSync(tmp, { force: true })
    throw e
  }
}

/**
 * Writes a message's pair into `dir`, making the folder first when it is not in `made` (one `mkdir`
 * per folder, not per message) or has gone since (a folder removed while the worker runs is made
 * again). Throws the file system's error.
 */
export const writeMessageSync = (dir: string, message: DirMessage, made: Set<string>): void => {
  const makeDir = () => {
    fs.mkdirSync(dir, { recursive: true })
    made.add(dir)
  }
  if (!made.has(dir)) makeDir()
  try {
    writePairSync(dir, message)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e
    makeDir()
    writePairSync(dir, message)
  }
}
