/**
 * The worker's HTTP side: `/healthz` (open), `/metrics` (Prometheus text), an admin JSON API under
 * `/api/` and the admin page at `/`. Everything but `/healthz` needs the bearer token (RFC 6750 §2.1
 * `Authorization: Bearer …`; the page may also be opened once with `?access_token=…`, §2.3, after
 * which its script sends the header). The server binds to loopback unless configured otherwise.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { createServer } from "node:http"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Day, Domain, HostPort, PolicyResult } from "@tlsrpt/core"
import type { ClusterStatus } from "@tlsrpt/fleet"
import {
  Outbox,
  type OutboxMessage,
  type ResultRow,
  ResultStore,
  type Suppression,
  SuppressionList
} from "@tlsrpt/store"
import { Context, Data, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import { Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE } from "./Metrics.js"
import { PAGE_HTML } from "./admin/Page.js"
import * as OutcomesApi from "./OutcomesApi.js"

/** The token and what the page shows about the running configuration. */
export class AdminSettings extends Context.Tag("@tlsrpt/worker/AdminSettings")<
  AdminSettings,
  {
    readonly token: Redacted.Redacted<string>
    /** Shown on the page: whether reports are sent, and why not. */
    readonly status: {
      readonly sending: boolean
      readonly reason?: string | undefined
      readonly transport: string
      readonly submitter?: string | undefined
    }
  }
>() {}

/**
 * In fleet mode (docs/design.md#fleet-mode): the cluster's status as `tlsrpt cluster status` reads it.
 * Absent in a single-process worker; `/api/cluster` then answers `{"enabled": false}`.
 */
export class AdminCluster extends Context.Tag("@tlsrpt/worker/AdminCluster")<
  AdminCluster,
  { readonly status: Effect.Effect<ClusterStatus.Status> }
>() {}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest()

/** Constant-time comparison (hashing first makes the lengths equal). */
export const tokenMatches = (expected: Redacted.Redacted<string>, given: string): boolean =>
  timingSafeEqual(digest(Redacted.value(expected)), digest(given))

/** 32 random bytes, base64url: the token written when none is configured. */
export const generateToken = (): string => randomBytes(32).toString("base64url")

// ---------------------------------------------------------------------------------------------------
// JSON shapes of the API

const encodeResults = Schema.encodeSync(Schema.Array(PolicyResult.PolicyResult))

export interface ApiResultRow {
  readonly id: number
  readonly day: string
  readonly policyDomain: string
  readonly recipientDomain: string
  readonly isHost: boolean
  readonly sendReport: boolean
  readonly sentToRecipientDomain: boolean
  readonly sentToPolicyDomain: boolean
  readonly policyTypes: ReadonlyArray<string>
  readonly success: number
  readonly failure: number
  readonly failureDetails: number
  /** RFC 8460 policy objects, kebab-case wire form. */
  readonly results: ReadonlyArray<unknown>
  readonly updated: string
}

export const toApiRow = (row: ResultRow): ApiResultRow => ({
  id: row.id,
  day: row.day,
  policyDomain: row.policyDomain,
  recipientDomain: row.recipientDomain,
  isHost: row.isHost,
  sendReport: row.sendReport,
  sentToRecipientDomain: row.sentToRecipientDomain,
  sentToPolicyDomain: row.sentToPolicyDomain,
  policyTypes: [...new Set(row.results.map((r) => r.policy.policyType))],
  success: row.results.reduce((n, r) => PolicyResult.addCounts(n, r.summary.totalSuccessfulSessionCount), 0),
  failure: row.results.reduce((n, r) => PolicyResult.addCounts(n, r.summary.totalFailureSessionCount), 0),
  failureDetails: row.results.reduce((n, r) => n + r.failureDetails.length, 0),
  results: encodeResults(row.results),
  updated: row.updated.toISOString()
})

export interface ApiDaySummary {
  readonly day: string
  readonly success: number
  readonly failure: number
  /** Per policy domain. */
  readonly domains: ReadonlyArray<{ readonly domain: string; readonly success: number; readonly failure: number }>
}

/** Successes and failures per day (ascending) and per policy domain: the page's chart. */
export const summarize = (rows: ReadonlyArray<ApiResultRow>): ReadonlyArray<ApiDaySummary> => {
  const days = new Map<string, Map<string, { success: number; failure: number }>>()
  for (const r of rows) {
    // Host rows repeat the sessions of their recipient domain (docs/design.md#host-rows): count recipient-domain rows only.
    if (r.isHost) continue
    const day = days.get(r.day) ?? new Map()
    days.set(r.day, day)
    const d = day.get(r.policyDomain) ?? { success: 0, failure: 0 }
    day.set(r.policyDomain, {
      success: PolicyResult.addCounts(d.success, r.success),
      failure: PolicyResult.addCounts(d.failure, r.failure)
    })
  }
  return [...days.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([day, domains]) => {
      const list = [...domains.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([domain, c]) => ({ domain, ...c }))
      return {
        day,
        success: list.reduce((n, d) => PolicyResult.addCounts(n, d.success), 0),
        failure: list.reduce((n, d) => PolicyResult.addCounts(n, d.failure), 0),
        domains: list
      }
    })
}

export const toApiOutbox = (m: OutboxMessage) => ({
  id: m.id,
  kind: m.kind,
  destination: m.destination,
  reportId: m.reportId,
  policyDomain: m.policyDomain,
  day: m.day,
  status: m.status,
  attempts: m.attempts,
  nextAttemptAt: m.nextAttemptAt.toISOString(),
  lastError: m.lastError ?? null,
  size: m.payload.byteLength,
  created: m.created.toISOString(),
  updated: m.updated.toISOString()
})

export const toApiSuppression = (s: Suppression) => ({
  id: s.id,
  address: s.address,
  until: s.until.toISOString(),
  comment: s.comment,
  inserted: s.inserted.toISOString()
})

/** The longest suppression comment kept: a note for an operator, not a document. */
export const MAX_COMMENT_LENGTH = 1000

const SuppressionInput = Schema.Struct({
  address: Schema.String.pipe(Schema.maxLength(320)),
  until: Schema.String.pipe(Schema.maxLength(64)),
  comment: Schema.optional(Schema.String.pipe(Schema.maxLength(MAX_COMMENT_LENGTH)))
})

/** The largest `POST /api/suppressions` body read; the JSON above is well under 2 KB. */
export const MAX_BODY_BYTES = 16_384

const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/

/**
 * A suppression's end, strictly ISO-8601 (`YYYY-MM-DD`, 00:00 UTC, or `YYYY-MM-DDTHH:MM[:SS[.mmm]][Z|±HH:MM]`,
 * UTC without a zone): `Date` alone accepts "1", "May 5" or "2024-02-30" (as March 1st), which would
 * suppress for a surprising time.
 */
export const parseUntil = (s: string): Either.Either<Date, string> => {
  const bad = Either.left(`not an ISO-8601 date-time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ): ${JSON.stringify(s)}`)
  const m = ISO_DATE_TIME.exec(s)
  if (m === null) return bad
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4] ?? "0", m[5] ?? "0", m[6] ?? "0"].map(Number)
  // The calendar fields must exist as written (no 2024-02-30, no 25:00).
  const fields = new Date(Date.UTC(year!, month! - 1, day!, hour!, minute!, second!))
  if (
    fields.getUTCFullYear() !== year ||
    fields.getUTCMonth() !== month! - 1 ||
    fields.getUTCDate() !== day ||
    fields.getUTCHours() !== hour ||
    fields.getUTCMinutes() !== minute ||
    fields.getUTCSeconds() !== second
  )
    return bad
  if (m[4] === undefined) return Either.right(fields)
  const date = new Date(m[7] === undefined ? `${s}Z` : s)
  return Number.isNaN(date.getTime()) ? bad : Either.right(date)
}

// ---------------------------------------------------------------------------------------------------
// Handlers

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })
const problem = (status: number, error: string) => json({ error }, status)

const searchParams = Effect.map(
  HttpServerRequest.HttpServerRequest,
  (req) => new URL(req.url, "http://localhost").searchParams
)

const parseFilter = Effect.gen(function* () {
  const params = yield* searchParams
  const day = params.get("day") ?? ""
  const domain = params.get("domain") ?? ""
  if (day !== "" && Either.isLeft(Day.parse(day)))
    return Either.left(`day: expected YYYY-MM-DD, got ${JSON.stringify(day)}`)
  let domainAscii: string | undefined
  if (domain !== "") {
    const parsed = Domain.parse(domain)
    if (Either.isLeft(parsed)) return Either.left(`domain: ${parsed.left.message}`)
    domainAscii = parsed.right.ascii
  }
  return Either.right({
    day: day === "" ? undefined : (day as Day.Day),
    domain: domainAscii
  })
})

const storeFailure = (e: { readonly message: string }) =>
  Effect.logError(`admin API: ${e.message}`).pipe(Effect.as(problem(500, "store error")))

const results = Effect.gen(function* () {
  const store = yield* ResultStore
  const filter = yield* parseFilter
  if (Either.isLeft(filter)) return problem(400, filter.left)
  const rows = yield* store.listResults(filter.right)
  return json(rows.map(toApiRow))
}).pipe(Effect.catchTag("StoreError", storeFailure))

const summary = Effect.gen(function* () {
  const store = yield* ResultStore
  const filter = yield* parseFilter
  if (Either.isLeft(filter)) return problem(400, filter.left)
  const rows = yield* store.listResults(filter.right)
  return json(summarize(rows.map(toApiRow)))
}).pipe(Effect.catchTag("StoreError", storeFailure))

const outbox = Effect.gen(function* () {
  const store = yield* Outbox
  const params = yield* searchParams
  const status = params.get("status") ?? ""
  if (status !== "" && status !== "queued" && status !== "delivered" && status !== "failed")
    return problem(400, "status: expected queued, delivered or failed")
  const messages = yield* store.list(status === "" ? {} : { status })
  return json(messages.map(toApiOutbox))
}).pipe(Effect.catchTag("StoreError", storeFailure))

const suppressions = Effect.gen(function* () {
  const store = yield* SuppressionList
  return json((yield* store.list).map(toApiSuppression))
}).pipe(Effect.catchTag("StoreError", storeFailure))

const addSuppression = Effect.gen(function* () {
  const store = yield* SuppressionList
  const req = yield* HttpServerRequest.HttpServerRequest
  const length = Number(req.headers["content-length"] ?? "0")
  if (length > MAX_BODY_BYTES) return problem(413, `the body must be at most ${MAX_BODY_BYTES} bytes`)
  // A chunked body without a length is cut at the same limit while it is read.
  const input = yield* HttpServerRequest.schemaBodyJson(SuppressionInput).pipe(
    HttpIncomingMessage.withMaxBodySize(Option.some(MAX_BODY_BYTES)),
    Effect.option
  )
  if (Option.isNone(input))
    return problem(400, `expected JSON {address, until, comment?} (comment at most ${MAX_COMMENT_LENGTH} characters)`)
  const until = parseUntil(input.value.until)
  if (Either.isLeft(until)) return problem(400, `until: ${until.left}`)
  const entry = yield* store.add({
    address: input.value.address,
    until: until.right,
    comment: input.value.comment
  })
  yield* Effect.logInfo("suppression added").pipe(Effect.annotateLogs({ address: entry.address, until: entry.until }))
  return json(toApiSuppression(entry), 201)
}).pipe(
  Effect.catchTag("InvalidAddress", (e) => Effect.succeed(problem(400, e.message))),
  Effect.catchTag("StoreError", storeFailure)
)

const removeSuppression = Effect.gen(function* () {
  const store = yield* SuppressionList
  const params = yield* HttpRouter.params
  const address = params.address ?? ""
  const removed = yield* store.remove(address)
  if (!removed) return problem(404, `no suppression for ${address}`)
  yield* Effect.logInfo("suppression removed").pipe(Effect.annotateLogs({ address }))
  return HttpServerResponse.empty({ status: 204 })
}).pipe(
  Effect.catchTag("InvalidAddress", (e) => Effect.succeed(problem(400, e.message))),
  Effect.catchTag("StoreError", storeFailure)
)

const status = Effect.map(AdminSettings, (s) => json(s.status))

const cluster = Effect.gen(function* () {
  const source = yield* Effect.serviceOption(AdminCluster)
  if (Option.isNone(source)) return json({ enabled: false })
  return json({ enabled: true, status: yield* source.value.status })
})

const metrics = Effect.gen(function* () {
  const m = yield* Metrics
  return HttpServerResponse.text(yield* m.scrape, { contentType: METRICS_CONTENT_TYPE })
})

const page = Effect.succeed(
  HttpServerResponse.html(PAGE_HTML).pipe(
    HttpServerResponse.setHeaders({
      "Cache-Control": "no-store",
      // The page is self-contained: inline script and style, no third-party origin.
      "Content-Security-Policy":
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      "Referrer-Policy": "no-referrer"
    })
  )
)

export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", Effect.succeed(HttpServerResponse.text("ok\n"))),
  HttpRouter.get("/metrics", metrics),
  HttpRouter.get("/", page),
  HttpRouter.get("/api/status", status),
  HttpRouter.get("/api/cluster", cluster),
  HttpRouter.get("/api/results", results),
  HttpRouter.get("/api/summary", summary),
  HttpRouter.get("/api/outbox", outbox),
  HttpRouter.get("/api/suppressions", suppressions),
  HttpRouter.post("/api/suppressions", addSuppression),
  HttpRouter.del("/api/suppressions/:address", removeSuppression),
  HttpRouter.post("/api/outcomes", OutcomesApi.recordOutcomes)
)

/** Bearer token on everything but `/healthz`. */
export const requireToken = HttpMiddleware.make((app) =>
  Effect.gen(function* () {
    const req = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(req.url, "http://localhost")
    if (url.pathname === "/healthz") return yield* app
    const settings = yield* AdminSettings
    const header = req.headers.authorization ?? ""
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
    // RFC 6750 §2.3: the query form only for opening the page itself.
    const query = req.method === "GET" && url.pathname === "/" ? url.searchParams.get("access_token") : null
    const given = bearer ?? query ?? undefined
    if (given === undefined || !tokenMatches(settings.token, given)) {
      return HttpServerResponse.unsafeJson(
        { error: "unauthorized: a bearer token is required" },
        { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="tlsrpt"' } }
      )
    }
    return yield* app
  })
)

/** The whole HTTP app; unknown paths answer 404 (the platform's RouteNotFound response). */
export const app = requireToken(router)

/**
 * The admin server on `listen`; logs the bound address (port 0 picks a free port, which the
 * `HttpServer` in the output tells).
 */
export const layer = (listen: HostPort.HostPort) =>
  HttpServer.serve(app).pipe(
    Layer.merge(
      Layer.effectDiscard(HttpServer.addressFormattedWith((a) => Effect.logInfo(`admin HTTP listening on ${a}`)))
    ),
    Layer.provideMerge(
      NodeHttpServer.layer(() => createServer(), { host: listen.host, port: listen.port }).pipe(
        Layer.mapError((e) => new ListenError({ address: HostPort.format(listen), cause: e.cause }))
      )
    )
  )

/** The admin server cannot listen (the port is taken, the address is not ours): names the address. */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly address: string
  readonly cause: unknown
}> {
  override get message(): string {
    const c = this.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
    const why =
      c?.code === "EADDRINUSE"
        ? "the address is already in use (another tlsrpt worker or program?)"
        : c?.code === "EADDRNOTAVAIL"
          ? "the address is not on this machine"
          : c?.code === "EACCES"
            ? "permission denied (ports below 1024 need privileges)"
            : String(c?.message ?? c)
    return `http.listen: cannot listen on ${this.address}: ${why}`
  }
}

/** Loopback addresses (127.0.0.0/8, ::1, localhost): anything else exposes the admin API to a network. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || /^::ffff:127\./i.test(host)
