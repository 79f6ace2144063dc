/**
 * `POST /api/outcomes`: HTTP ingestion for MTAs that are neither Postfix (the datagram socket) nor
 * Effect programs (the Collector Layer). The body is JSON Lines of SessionOutcomes, the format of
 * `tlsrpt record`. Validated whole before anything is recorded: one bad line answers 400 naming every
 * bad line (up to 100) and nothing is stored. Then each outcome goes through `Collector.record`, which
 * waits while the buffer is full (back-pressure holds the request, it never drops). The answer is
 * `{recorded, rows}`; rows are written by the collector's next flush (within `flushInterval`, and at
 * SIGTERM).
 */
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Collector, SessionOutcome } from "@tlsrpt/collector"
import { Effect, Either, Option } from "effect"

/** Largest body accepted (413 past it): about 30,000 outcomes. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024
const MAX_LISTED = 100

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

export interface BadLine {
  readonly line: number
  readonly error: string
}

/** Every non-blank line decoded, or every bad line. */
export const decodeBody = (
  text: string
): Either.Either<ReadonlyArray<SessionOutcome.SessionOutcome>, ReadonlyArray<BadLine>> => {
  const outcomes: Array<SessionOutcome.SessionOutcome> = []
  const bad: Array<BadLine> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === "") continue
    const decoded = SessionOutcome.decodeOutcomeJson(lines[i]!)
    if (Either.isLeft(decoded)) bad.push({ line: i + 1, error: decoded.left.message })
    else outcomes.push(decoded.right)
  }
  return bad.length > 0 ? Either.left(bad) : Either.right(outcomes)
}

const noRow = () => {}

export const recordOutcomes = Effect.gen(function* () {
  const collector = yield* Effect.serviceOption(Collector)
  if (Option.isNone(collector)) return json({ error: "this server records no outcomes" }, 503)
  const req = yield* HttpServerRequest.HttpServerRequest
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES)
    return json({ error: `body larger than ${MAX_BODY_BYTES} bytes` }, 413)
  const text = yield* req.text.pipe(HttpIncomingMessage.withMaxBodySize(Option.some(MAX_BODY_BYTES)), Effect.either)
  if (Either.isLeft(text)) {
    const tooLarge = String(text.left.cause ?? text.left.message).includes("maxBytes") || text.left.reason === "Decode"
    return tooLarge
      ? json({ error: `body larger than ${MAX_BODY_BYTES} bytes` }, 413)
      : json({ error: `could not read the body: ${text.left.message}` }, 400)
  }
  const decoded = decodeBody(text.right)
  if (Either.isLeft(decoded)) {
    yield* Effect.logWarning("POST /api/outcomes refused: invalid lines; nothing recorded").pipe(
      Effect.annotateLogs({ badLines: decoded.left.length, first: decoded.left[0]!.line })
    )
    return json(
      {
        error: "invalid lines; nothing recorded",
        badLines: decoded.left.length,
        lines: decoded.left.slice(0, MAX_LISTED)
      },
      400
    )
  }
  let rows = 0
  for (const o of decoded.right) {
    // Decoded by the Schema: `record` cannot refuse it.
    yield* collector.value.record(o).pipe(Effect.orDie)
    rows += SessionOutcome.forEachRow(o, noRow)
  }
  return json({ recorded: decoded.right.length, rows })
})
