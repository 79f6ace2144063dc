/**
 * The worker's HTTP side: `/healthz` (open), `/metrics` (Prometheus text), an admin JSON API under
 * `/api/` and the admin page at `/`. Everything but `/healthz` needs the bearer token (RFC 6750 §2.1
 * `Authorization: Bearer …`; the page may also be opened once with `?access_token=…`, §2.3, after
 * which its script sends the header). The server binds to loopback unless configured otherwise.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { createServer } from "node:http"
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Day, Domain, PolicyResult } from "@tlsrpt/core"
import { type OutboxMessage, type ResultRow, ResultStore, type Suppression } from "@tlsrpt/store"
import { Context, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import type { HostPort } from "./Config.js"
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
  success: row.results.reduce((n, r) => n + r.summary.totalSuccessfulSessionCount, 0),
  failure: row.results.reduce((n, r) => n + r.summary.totalFailureSessionCount, 0),
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
    day.set(r.policyDomain, { success: d.success + r.success, failure: d.failure + r.failure })
  }
  return [...days.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([day, domains]) => {
      const list = [...domains.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([domain, c]) => ({ domain, ...c }))
      return {
        day,
        success: list.reduce((n, d) => n + d.success, 0),
        failure: list.reduce((n, d) => n + d.failure, 0),
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

const SuppressionInput = Schema.Struct({
  address: Schema.String,
  until: Schema.String,
  comment: Schema.optional(Schema.String)
})

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
  const store = yield* ResultStore
  const params = yield* searchParams
  const status = params.get("status") ?? ""
  if (status !== "" && status !== "queued" && status !== "delivered" && status !== "failed")
    return problem(400, "status: expected queued, delivered or failed")
  const messages = yield* store.listOutbox(status === "" ? {} : { status })
  return json(messages.map(toApiOutbox))
}).pipe(Effect.catchTag("StoreError", storeFailure))

const suppressions = Effect.gen(function* () {
  const store = yield* ResultStore
  return json((yield* store.suppressList).map(toApiSuppression))
}).pipe(Effect.catchTag("StoreError", storeFailure))

const addSuppression = Effect.gen(function* () {
  const store = yield* ResultStore
  const input = yield* HttpServerRequest.schemaBodyJson(SuppressionInput).pipe(Effect.option)
  if (Option.isNone(input)) return problem(400, "expected JSON {address, until, comment?}")
  const until = new Date(input.value.until)
  if (Number.isNaN(until.getTime())) return problem(400, `until: not an ISO-8601 date-time: ${input.value.until}`)
  const entry = yield* store.suppressAdd({ address: input.value.address, until, comment: input.value.comment })
  yield* Effect.logInfo("suppression added").pipe(Effect.annotateLogs({ address: entry.address, until: entry.until }))
  return json(toApiSuppression(entry), 201)
}).pipe(
  Effect.catchTag("InvalidAddress", (e) => Effect.succeed(problem(400, e.message))),
  Effect.catchTag("StoreError", storeFailure)
)

const removeSuppression = Effect.gen(function* () {
  const store = yield* ResultStore
  const params = yield* HttpRouter.params
  const address = params.address ?? ""
  const removed = yield* store.suppressRemove(address)
  if (!removed) return problem(404, `no suppression for ${address}`)
  yield* Effect.logInfo("suppression removed").pipe(Effect.annotateLogs({ address }))
  return HttpServerResponse.empty({ status: 204 })
}).pipe(
  Effect.catchTag("InvalidAddress", (e) => Effect.succeed(problem(400, e.message))),
  Effect.catchTag("StoreError", storeFailure)
)

const status = Effect.map(AdminSettings, (s) => json(s.status))

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
export const layer = (listen: HostPort) =>
  HttpServer.serve(app).pipe(
    Layer.merge(
      Layer.effectDiscard(HttpServer.addressFormattedWith((a) => Effect.logInfo(`admin HTTP listening on ${a}`)))
    ),
    Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { host: listen.host, port: listen.port }))
  )
