/**
 * An HTTP endpoint on loopback for tests (node:http): records every request (method, path, headers,
 * body bytes) and answers from a programmable status script (e.g. 500, then 201), for the https
 * reporting path (RFC 8460 §3: POST `application/tlsrpt+gzip`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Effect, Queue, type Scope } from "effect"

/**
 * One step of the reply script: a status code, "hang" (never answer, for client timeouts), or a
 * status with extra headers and a body: text, "endless" (64 KiB chunks for as long as the client
 * reads, for memory bounds; the bytes written are reported by `streamed`), or "hang" (headers, then
 * nothing).
 */
export type HttpReply =
  | number
  | "hang"
  | {
      readonly status: number
      readonly headers?: Readonly<Record<string, string>> | undefined
      readonly body?: string | "endless" | "hang" | undefined
    }

export interface HttpSinkOptions {
  /** One step per request, in order; once used up, every request gets `defaultStatus`. */
  readonly script?: ReadonlyArray<HttpReply> | undefined
  /** Status after the script is used up (default 200). */
  readonly defaultStatus?: number | undefined
}

export interface RecordedRequest {
  readonly method: string
  /** Path and query. */
  readonly path: string
  /** Lower-case header names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** The status the sink answered, or "hang". */
  readonly reply: HttpReply
}

export interface HttpSink {
  readonly port: number
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** Waits for the next request. */
  readonly take: Effect.Effect<RecordedRequest>
  /** Waits for the next "endless" body to end (the client closed): the body bytes written to it. */
  readonly streamed: Effect.Effect<number>
  /** Replaces the rest of the reply script. */
  readonly setScript: (script: ReadonlyArray<HttpReply>) => Effect.Effect<void>
}

const readBody = (req: IncomingMessage): Promise<Uint8Array> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))))
    req.on("error", reject)
  })

const flatHeaders = (req: IncomingMessage): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return out
}

/** Starts the sink on 127.0.0.1, port 0; it is closed (open connections dropped) when the scope closes. */
export const make = (options: HttpSinkOptions = {}): Effect.Effect<HttpSink, never, Scope.Scope> =>
  Effect.gen(function* () {
    let script: Array<HttpReply> = [...(options.script ?? [])]
    const defaultStatus = options.defaultStatus ?? 200
    const requests: Array<RecordedRequest> = []
    const arrivals = yield* Effect.acquireRelease(Queue.unbounded<RecordedRequest>(), Queue.shutdown)

    const ended = yield* Effect.acquireRelease(Queue.unbounded<number>(), Queue.shutdown)
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    const stream = (res: ServerResponse): void => {
      let written = 0
      const more = (): void => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length
        if (!res.destroyed) written += chunk.length
      }
      res.on("drain", more)
      res.on("close", () => Queue.unsafeOffer(ended, written))
      more()
    }

    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      const reply = script.shift() ?? defaultStatus
      readBody(req).then(
        (body) => {
          const recorded: RecordedRequest = {
            method: req.method ?? "",
            path: req.url ?? "",
            headers: flatHeaders(req),
            body,
            reply
          }
          requests.push(recorded)
          Queue.unsafeOffer(arrivals, recorded)
          if (reply === "hang") return
          if (typeof reply === "number") {
            res.writeHead(reply, { "content-type": "text/plain" }).end(`status ${reply}\n`)
            return
          }
          res.writeHead(reply.status, { "content-type": "text/plain", ...reply.headers })
          if (reply.body === "hang") res.flushHeaders()
          else if (reply.body === "endless") stream(res)
          else res.end(reply.body ?? "")
        },
        () => res.destroy()
      )
    }

    const server = yield* Effect.acquireRelease(
      Effect.async<Server>((resume) => {
        const s = createServer(handle)
        s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
      }),
      (s) =>
        Effect.async<void>((resume) => {
          s.close(() => resume(Effect.void))
          // "hang" replies and keep-alive sockets would hold close() open
          s.closeAllConnections()
        })
    )
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    return {
      port,
      url: `http://127.0.0.1:${port}`,
      requests: Effect.sync(() => [...requests]),
      take: Queue.take(arrivals),
      streamed: Queue.take(ended),
      setScript: (next) =>
        Effect.sync(() => {
          script = [...next]
        })
    } satisfies HttpSink
  })
