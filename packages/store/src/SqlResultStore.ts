/**
 * `ResultStore` on any `@effect/sql` client. The queries are written once for every dialect: plain
 * TEXT/INTEGER columns, `ON CONFLICT`, row-value `IN (VALUES …)`, `RETURNING`, no dialect functions;
 * the few differences come from the `Dialect` (`sqlite/`, `pg/`). Times are epoch milliseconds,
 * booleans 0/1, JSON lists TEXT.
 *
 * `addResults` is safe with several writers on one database (one collector per MTA host on
 * PostgreSQL): writers take turns (`Dialect.lockWriters`), lock the rows they merge into
 * (`Dialect.lockRows`), insert new keys with `ON CONFLICT DO NOTHING` (`Dialect.insertRaces`) and merge
 * into the rows another writer inserted first, so counts of the same key from several hosts add up, never overwrite.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { type Day, Domain } from "@tlsrpt/core"
import { Clock, Effect, Either, Layer, Option, Schedule } from "effect"
import type { Dialect } from "./Dialect.js"
import * as OutboxRecords from "./OutboxRecords.js"
import { OutboxSignal } from "./OutboxSignal.js"
import * as RowMerge from "./RowMerge.js"
import {
  type DeleteKey,
  type MarkSent,
  type MarkSentReport,
  type NewResultRow,
  type ResultFilter,
  type ResultKey,
  type ResultRow,
  ResultStore,
  type RowsKey
} from "./ResultStore.js"
import { fromSqlError, StoreError } from "./StoreError.js"
import * as StoredResults from "./StoredResults.js"

export type Service = ResultStore["Type"]

/**
 * `addResults` works in steps of this many rows (keys per existence SELECT, 3 parameters each; rows
 * per upsert, 8 each, well below SQLite's 32,766 and PostgreSQL's 65,535; rows merged) and, between
 * steps, yields to other fibers once it has worked for a slice (at least SLICE_MILLIS, and at least as
 * long as its last wait for a turn: about half of the CPU however many fibers compete). So a caller
 * (the collector) keeps aggregating while a big batch is written, and each flush covers more outcomes
 * per key (collector `ingest` bench: 22,000 → ~130,000 outcomes/s). Other queries cannot join the open
 * transaction: the SQLite client holds its one connection until the commit, and they wait for it
 * (test/SqliteFile.test.ts).
 */
const STEP = 128
const SLICE_MILLIS = 2

/** `rowsOfKeys` reads this many keys per query (2 parameters each). */
const ROWS_KEYS = 256

interface ResultRecord {
  readonly id: number
  readonly policy_domain: string
  readonly day: string
  readonly recipient_domain: string
  readonly is_host: number
  readonly send_report: number
  readonly sent_to_recipient_domain: number
  readonly sent_to_policy_domain: number
  readonly recipient_domain_reporting_addresses: string
  readonly results: string
  readonly created: number
  readonly updated: number
}

/**
 * Rows in the next statement: a full chunk, else the largest power of two that fits, so that any batch
 * size uses at most log2(chunk) + 1 distinct statements (each prepared once).
 */
const chunkSize = (left: number, max: number): number => (left >= max ? max : 2 ** Math.floor(Math.log2(left)))

/** The INSERT's columns, in the order of its parameters. */
const INSERT_COLUMNS = [
  "policy_domain",
  "day",
  "recipient_domain",
  "is_host",
  "send_report",
  "results",
  "created",
  "updated"
] as const

// NUL cannot occur in a domain or a day, so it separates key parts unambiguously.
const keyOf = (policyDomain: string, day: string, recipientDomain: string) =>
  `${policyDomain}\u0000${day}\u0000${recipientDomain}`

const flag = (b: boolean): number => (b ? 1 : 0)

// Decoding is synchronous, so an Either rather than an Effect: a round decodes every row it reads,
// and an Effect per row was a run-loop step per row on the main thread.
const decodeStrings = (operation: string, text: string): Either.Either<ReadonlyArray<string>, StoreError> => {
  try {
    const json: unknown = JSON.parse(text)
    if (Array.isArray(json) && json.every((s) => typeof s === "string")) return Either.right(json)
    return Either.left(new StoreError({ operation, cause: new Error(`expected a JSON list of strings: ${text}`) }))
  } catch (cause) {
    return Either.left(new StoreError({ operation, cause }))
  }
}

const toResultRow = (operation: string, r: ResultRecord): Either.Either<ResultRow, StoreError> => {
  const results = StoredResults.decode(r.results)
  if (Either.isLeft(results)) return Either.left(new StoreError({ operation, cause: results.left }))
  return Either.map(decodeStrings(operation, r.recipient_domain_reporting_addresses), (addresses) => ({
    id: r.id,
    policyDomain: r.policy_domain,
    day: r.day as Day.Day,
    recipientDomain: r.recipient_domain,
    isHost: r.is_host === 1,
    sendReport: r.send_report === 1,
    sentToRecipientDomain: r.sent_to_recipient_domain === 1,
    sentToPolicyDomain: r.sent_to_policy_domain === 1,
    recipientDomainReportingAddresses: addresses,
    results: results.right,
    created: new Date(r.created),
    updated: new Date(r.updated)
  }))
}

const toResultRows = (
  operation: string,
  records: ReadonlyArray<ResultRecord>
): Either.Either<Array<ResultRow>, StoreError> => {
  const rows: Array<ResultRow> = []
  for (const r of records) {
    const row = toResultRow(operation, r)
    if (Either.isLeft(row)) return Either.left(row.left)
    rows.push(row.right)
  }
  return Either.right(rows)
}

/** The rows of one key in one `addResults` call, in call order. */
interface Pending {
  readonly policyDomain: string
  readonly day: Day.Day
  readonly recipientDomain: string
  readonly rows: Array<NewResultRow>
}

interface Merged {
  readonly pending: Pending
  /** The stored row's id; undefined for a new key. */
  readonly id: number | undefined
  readonly isHost: number
  readonly sendReport: number
  readonly results: string
}

interface ExistingRecord {
  readonly id: number
  readonly policy_domain: string
  readonly day: string
  readonly recipient_domain: string
  readonly send_report: number
  readonly results: string
}

/** A transaction that deadlocked with another writer is retried whole, after a short random pause. */
const conflictRetry = (dialect: Dialect) => ({
  while: (e: unknown) => e instanceof SqlError && dialect.isTransientConflict(e),
  times: 20,
  schedule: Schedule.jittered(Schedule.exponential("5 millis"))
})

/** The store on the ambient `SqlClient`; the schema must be migrated (`Migrations.run`). */
export const make = (dialect: Dialect): Effect.Effect<Service, never, SqlClient.SqlClient | OutboxSignal> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const signal = yield* OutboxSignal

    const selectResults = sql.literal(
      `SELECT id, policy_domain, day, recipient_domain, is_host, send_report, sent_to_recipient_domain,
      sent_to_policy_domain, recipient_domain_reporting_addresses, results, created, updated FROM results`
    )

    // addResults runs a few thousand statements per flush; building each through the tagged template
    // (and preparing each distinct size) cost more than SQLite's own work. So each statement's text is
    // compiled once per size, by the client's own compiler (dialect-neutral placeholders), and executed
    // on the transaction's connection, whose prepare cache then always hits.
    const selectTexts = new Map<number, string>()
    const selectText = (n: number): string => {
      let text = selectTexts.get(n)
      if (text === undefined) {
        const tuples = sql.csv(Array.from({ length: n }, () => sql`(${""}, ${""}, ${""})`))
        // In key order, so that writers sharing keys lock them in one order (no deadlock within a step).
        text = sql`SELECT id, policy_domain, day, recipient_domain, send_report, results
          FROM results WHERE (policy_domain, day, recipient_domain) IN (VALUES ${tuples})
          ORDER BY policy_domain, day, recipient_domain ${sql.literal(dialect.lockRows)}`.compile()[0]
        selectTexts.set(n, text)
      }
      return text
    }
    // A plain UPDATE of the rows found (joined on id): an upsert would take a new id from PostgreSQL's
    // identity sequence for every merged row, so a row's id would depend on how calls were batched.
    // VALUES columns are column1… in both dialects; the CASTs type PostgreSQL's parameters.
    const updateTexts = new Map<number, string>()
    const updateText = (n: number): string => {
      let text = updateTexts.get(n)
      if (text === undefined) {
        const tuples = sql.csv(
          Array.from(
            { length: n },
            () =>
              sql`(CAST(${0} AS BIGINT), CAST(${0} AS INTEGER), CAST(${0} AS INTEGER), CAST(${""} AS TEXT), CAST(${0} AS BIGINT))`
          )
        )
        text = sql`UPDATE results SET is_host = v.column2, send_report = v.column3, results = v.column4,
          updated = v.column5 FROM (VALUES ${tuples}) AS v WHERE results.id = v.column1`.compile()[0]
        updateTexts.set(n, text)
      }
      return text
    }
    const insertTexts = new Map<number, string>()
    const insertText = (n: number): string => {
      let text = insertTexts.get(n)
      if (text === undefined) {
        const row = Object.fromEntries(INSERT_COLUMNS.map((c) => [c, ""]))
        const insert = sql`INSERT INTO results ${sql.insert(Array.from({ length: n }, () => row))}`
        text = (
          dialect.insertRaces
            ? sql`${insert} ON CONFLICT (policy_domain, day, recipient_domain) DO NOTHING
              RETURNING policy_domain, day, recipient_domain`
            : insert
        ).compile()[0]
        insertTexts.set(n, text)
      }
      return text
    }

    /**
     * docs/design.md#row-merge for one call. Rows are grouped by key first; folding each key's rows in call order into
     * the stored row is what the spec's row-by-row loop does, since rows of other keys do not interact.
     * Then, STEP keys at a time (one transaction throughout): one SELECT finds and locks their stored
     * rows, one upsert writes those merged; one INSERT (… DO NOTHING where `insertRaces`) adds the new keys in first-seen order;
     * a new key another writer inserted meanwhile is then locked and merged into like a stored one.
     */
    const addResults = Effect.fn("ResultStore.addResults")(function* (rows: ReadonlyArray<NewResultRow>) {
      if (rows.length === 0) return
      const clock = yield* Effect.clock
      const now = clock.unsafeCurrentTimeMillis()
      const groups = new Map<string, Pending>()
      for (const row of rows) {
        const policyDomain = row.policyDomain.ascii
        const recipientDomain = row.recipientDomain.ascii
        const key = keyOf(policyDomain, row.day, recipientDomain)
        const group = groups.get(key)
        if (group === undefined) groups.set(key, { policyDomain, day: row.day, recipientDomain, rows: [row] })
        else group.rows.push(row)
      }
      const pending = Array.from(groups.values())

      /** Each key's rows folded into its stored row, or into its first row (docs/design.md#row-merge), in `keys` order. */
      const merged = (keys: ReadonlyArray<Pending>, stored: ReadonlyMap<string, ExistingRecord>) => {
        const out: Array<Merged> = new Array(keys.length)
        for (let j = 0; j < keys.length; j++) {
          const p = keys[j]!
          const found = stored.get(keyOf(p.policyDomain, p.day, p.recipientDomain))
          let current: RowMerge.RowState | undefined
          if (found !== undefined) {
            const decoded = StoredResults.decode(found.results)
            if (Either.isLeft(decoded))
              return Either.left(new StoreError({ operation: "ResultStore.addResults", cause: decoded.left }))
            // IsHost is not read: the last row added always sets it.
            current = { isHost: false, sendReport: found.send_report === 1, results: decoded.right }
          }
          const state = RowMerge.addRows(current, p.rows)!
          out[j] = {
            pending: p,
            id: found?.id,
            isHost: flag(state.isHost),
            sendReport: flag(state.sendReport),
            results: StoredResults.encode(state.results)
          }
        }
        return Either.right(out)
      }
      /** In INSERT_COLUMNS order. */
      const insertValues = (rows: ReadonlyArray<Merged>) =>
        rows.flatMap((m) => [
          m.pending.policyDomain,
          m.pending.day,
          m.pending.recipientDomain,
          m.isHost,
          m.sendReport,
          m.results,
          now,
          now
        ])
      // The sent flags, the reporting addresses and `created` stay as they are (docs/design.md#row-merge).
      const updateValues = (rows: ReadonlyArray<Merged>) =>
        rows.flatMap((m) => [m.id!, m.isHost, m.sendReport, m.results, now])

      const transaction = Effect.gen(function* () {
        // The statements run on the transaction's connection with precompiled text (see `selectText`).
        const connection = yield* Effect.serviceOption(SqlClient.TransactionConnection)
        if (Option.isNone(connection)) return yield* Effect.dieMessage("addResults: no transaction connection")
        const conn = connection.value[0]
        if (dialect.lockWriters !== undefined) yield* conn.execute(dialect.lockWriters, [], undefined)
        // Between steps: yield once the slice is over (see STEP). Every other runnable fiber gets its turn
        // before this one resumes, so the next slice lasts as long as that wait did.
        let sliceEnd = clock.unsafeCurrentTimeMillis() + SLICE_MILLIS
        const pause = Effect.suspend(() => {
          const before = clock.unsafeCurrentTimeMillis()
          if (before < sliceEnd) return Effect.void
          return Effect.map(Effect.yieldNow(), () => {
            const after = clock.unsafeCurrentTimeMillis()
            sliceEnd = after + Math.max(SLICE_MILLIS, after - before)
          })
        })
        const stored = new Map<string, ExistingRecord>()
        /** Reads (and, where several write, locks) the stored rows of these keys into `stored`. */
        const select = (keys: ReadonlyArray<Pending>) =>
          Effect.map(
            conn.execute(
              selectText(keys.length),
              keys.flatMap((p) => [p.policyDomain, p.day, p.recipientDomain]),
              undefined
            ) as Effect.Effect<ReadonlyArray<ExistingRecord>, SqlError>,
            (found) => {
              stored.clear()
              for (const r of found) stored.set(keyOf(r.policy_domain, r.day, r.recipient_domain), r)
            }
          )
        /** Runs `f` on `items` in chunks of power-of-two sizes (few distinct statements, see `chunkSize`). */
        const inChunks = <T, A>(
          items: ReadonlyArray<T>,
          f: (chunk: ReadonlyArray<T>) => Effect.Effect<ReadonlyArray<A>, SqlError>
        ) =>
          Effect.gen(function* () {
            const out: Array<A> = []
            for (let k = 0; k < items.length; ) {
              const m = chunkSize(items.length - k, STEP)
              out.push(...(yield* f(items.slice(k, k + m))))
              k += m
            }
            return out
          })
        const update = (keys: ReadonlyArray<Pending>) =>
          Effect.flatMap(merged(keys, stored), (rows) =>
            inChunks(rows, (chunk) => conn.execute(updateText(chunk.length), updateValues(chunk), undefined))
          )
        // Keys are distinct, so each step (SELECT, merge, write of STEP keys) is independent of the
        // others; steps in key order give new keys their ids in first-seen order (docs/design.md#ordering reads phase
        // 1 by id). A step's objects die young instead of living (and being promoted) for the whole batch.
        for (let i = 0; i < pending.length; ) {
          const n = chunkSize(pending.length - i, STEP)
          const step = pending.slice(i, i + n)
          yield* select(step)
          const old = step.filter((p) => stored.has(keyOf(p.policyDomain, p.day, p.recipientDomain)))
          const fresh = step.filter((p) => !stored.has(keyOf(p.policyDomain, p.day, p.recipientDomain)))
          if (old.length > 0) yield* update(old)
          if (fresh.length > 0) {
            stored.clear()
            const rows = yield* merged(fresh, stored)
            const inserted = yield* inChunks(
              rows,
              (chunk) =>
                conn.execute(insertText(chunk.length), insertValues(chunk), undefined) as Effect.Effect<
                  ReadonlyArray<ExistingRecord>,
                  SqlError
                >
            )
            // Without `insertRaces` every key was inserted (or the INSERT failed).
            if (dialect.insertRaces && inserted.length < fresh.length) {
              // Another writer inserted some of these keys since the SELECT: merge into its rows.
              const mine = new Set(inserted.map((r) => keyOf(r.policy_domain, r.day, r.recipient_domain)))
              const raced = fresh.filter((p) => !mine.has(keyOf(p.policyDomain, p.day, p.recipientDomain)))
              yield* select(raced)
              yield* update(raced)
            }
          }
          i += n
          yield* pause
        }
      })
      yield* sql.withTransaction(transaction).pipe(Effect.retry(conflictRetry(dialect)))
    }, fromSqlError("ResultStore.addResults"))

    const keysUpTo = Effect.fn("ResultStore.keysUpTo")(function* (day: Day.Day) {
      const records = yield* sql<{
        readonly policy_domain: string
        readonly day: string
        readonly recipient_domain: string
        readonly send_report: number
      }>`SELECT policy_domain, day, recipient_domain, send_report FROM results WHERE day <= ${day} ORDER BY id`
      return records.map(
        (r): ResultKey => ({
          policyDomain: r.policy_domain,
          day: r.day as Day.Day,
          recipientDomain: r.recipient_domain,
          sendReport: r.send_report === 1
        })
      )
    }, fromSqlError("ResultStore.keysUpTo"))

    // The round's batched fetch: ROWS_KEYS keys per query, rows grouped per key in the query's order,
    // which is each key's own order (docs/design.md#ordering).
    const rowsOfKeys = Effect.fn("ResultStore.rowsOfKeys")(function* (
      phase: "recipient-domain" | "policy-domain",
      keys: ReadonlyArray<RowsKey>
    ) {
      const byKey = new Map<string, { readonly key: RowsKey; readonly rows: Array<ResultRow> }>()
      for (const key of keys) byKey.set(keyOf(key.domain, key.day, ""), { key, rows: [] })
      const distinct = Array.from(byKey.values(), (g) => g.key)
      for (let i = 0; i < distinct.length; i += ROWS_KEYS) {
        const pairs = sql.csv(distinct.slice(i, i + ROWS_KEYS).map((k) => sql`(${k.domain}, ${k.day})`))
        const records = yield* phase === "recipient-domain"
          ? sql<ResultRecord>`${selectResults} WHERE (recipient_domain, day) IN (VALUES ${pairs}) ORDER BY id`
          : sql<ResultRecord>`${selectResults} WHERE (policy_domain, day) IN (VALUES ${pairs})
            ORDER BY recipient_domain, id`
        const rows = yield* toResultRows("rowsOfKeys", records)
        for (const [j, r] of records.entries()) {
          const domain = phase === "recipient-domain" ? r.recipient_domain : r.policy_domain
          byKey.get(keyOf(domain, r.day, ""))?.rows.push(rows[j]!)
        }
      }
      return keys.map((k) => byKey.get(keyOf(k.domain, k.day, ""))!.rows)
    }, fromSqlError("ResultStore.rowsOfKeys"))

    const listResults = Effect.fn("ResultStore.listResults")(function* (filter?: ResultFilter) {
      const clauses = []
      if (filter?.day !== undefined) clauses.push(sql`day = ${filter.day}`)
      if (filter?.domain !== undefined) {
        // People type domains in any spelling; rows hold A-labels.
        const input = filter.domain
        const domain = Either.match(Domain.parse(input), { onLeft: () => input, onRight: (d) => d.ascii })
        clauses.push(sql`(policy_domain = ${domain} OR recipient_domain = ${domain})`)
      }
      const records = yield* sql<ResultRecord>`${selectResults}
        ${clauses.length > 0 ? sql`WHERE ${sql.and(clauses)}` : sql.literal("")}
        ORDER BY day, policy_domain, recipient_domain`
      return yield* toResultRows("listResults", records)
    }, fromSqlError("ResultStore.listResults"))

    /**
     * The marks of a batch of reports: one UPDATE per phase and ROWS_KEYS keys rather than one per
     * report (each statement is a compile, a prepared-statement lookup and a span on the round's main
     * thread). A key marked twice keeps its last mark, as one UPDATE after the other would.
     */
    const markSentAll = (marks: ReadonlyArray<MarkSent>) => {
      const byRecipient = new Map<string, Extract<MarkSent, { readonly phase: "recipient-domain" }>>()
      const byPolicyDomain = new Map<string, Extract<MarkSent, { readonly phase: "policy-domain" }>>()
      for (const m of marks) {
        if (m.phase === "recipient-domain") byRecipient.set(keyOf(m.recipientDomain, m.day, ""), m)
        else byPolicyDomain.set(keyOf(m.policyDomain, m.day, ""), m)
      }
      const chunks = <A>(all: ReadonlyArray<A>) =>
        Array.from({ length: Math.ceil(all.length / ROWS_KEYS) }, (_, i) =>
          all.slice(i * ROWS_KEYS, (i + 1) * ROWS_KEYS)
        )
      const statements = [
        ...chunks([...byRecipient.values()]).map(
          (ms) =>
            // each key with its own addresses: a VALUES table joined in (UPDATE … FROM: SQLite ≥ 3.33,
            // PostgreSQL; both name the columns of a VALUES list column1, column2, …)
            sql`UPDATE results SET sent_to_recipient_domain = 1, recipient_domain_reporting_addresses = v.column3
              FROM (VALUES ${sql.csv(
                ms.map((m) => sql`(${m.recipientDomain}, ${m.day}, ${JSON.stringify(m.reportingAddresses)})`)
              )}) AS v
              WHERE results.recipient_domain = v.column1 AND results.day = v.column2`
        ),
        ...chunks([...byPolicyDomain.values()]).map(
          (ms) => sql`UPDATE results SET sent_to_policy_domain = 1
            WHERE (policy_domain, day) IN (VALUES ${sql.csv(ms.map((m) => sql`(${m.policyDomain}, ${m.day})`))})`
        )
      ]
      return Effect.forEach(statements, (s) => s, { discard: true })
    }

    // docs/design.md#one-transaction-for-mark-and-outbox: the marks and the messages of a batch of
    // reports commit together or not at all; no ids are read back.
    const markSentAndEnqueueAll = Effect.fn("ResultStore.markSentAndEnqueueAll")(function* (
      reports: ReadonlyArray<MarkSentReport>
    ) {
      if (reports.length === 0) return
      const now = yield* Clock.currentTimeMillis
      yield* sql.withTransaction(
        Effect.zipRight(
          markSentAll(reports.map((r) => r.mark)),
          // every message of the batch in one multi-row INSERT, in report order
          OutboxRecords.insertAll(
            sql,
            reports.flatMap((r) => r.messages),
            now
          )
        )
      )
      // after the commit: the delivery loop wakes to messages it can see (docs/design.md#delivery-loop)
      if (reports.some((r) => r.messages.length > 0)) yield* signal.raise
    }, fromSqlError("ResultStore.markSentAndEnqueueAll"))

    const countAndDelete = (where: ReturnType<typeof sql.and>) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const [row] = yield* sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM results WHERE ${where}`
          const n = Number(row!.n)
          if (n > 0) yield* sql`DELETE FROM results WHERE ${where}`
          return n
        })
      )

    // docs/design.md#cleanup-matrix cleanup of (policy domain, day) keys; with a phase, only the rows that
    // phase owns (docs/design.md#cleanup-per-phase).
    const deleteKeys = Effect.fn("ResultStore.deleteKeys")(function* (keys: ReadonlyArray<DeleteKey>) {
      if (keys.length === 0) return 0
      // A round cleans up thousands of keys: ROWS_KEYS keys of one phase per statement pair, in one
      // transaction, rather than a COUNT and a DELETE (and a savepoint) per key.
      const byPhase = new Map<DeleteKey["phase"], Array<DeleteKey>>()
      for (const k of keys) {
        const ks = byPhase.get(k.phase)
        if (ks === undefined) byPhase.set(k.phase, [k])
        else ks.push(k)
      }
      const chunks = [...byPhase].flatMap(([phase, ks]) =>
        Array.from({ length: Math.ceil(ks.length / ROWS_KEYS) }, (_, i) =>
          sql.and([
            sql`(policy_domain, day) IN (VALUES ${sql.csv(
              ks.slice(i * ROWS_KEYS, (i + 1) * ROWS_KEYS).map((k) => sql`(${k.policyDomain}, ${k.day})`)
            )})`,
            ...(phase === "recipient-domain"
              ? [sql`recipient_domain = policy_domain`]
              : phase === "policy-domain"
                ? [sql`recipient_domain <> policy_domain`]
                : [])
          ])
        )
      )
      return yield* sql.withTransaction(
        Effect.reduce(chunks, 0, (n, where) => Effect.map(countAndDelete(where), (d) => n + d))
      )
    }, fromSqlError("ResultStore.deleteKeys"))

    // The schedule's record of the days whose round completed (docs/design.md#schedule-catch-up).
    const markDayReported = Effect.fn("ResultStore.markDayReported")(function* (day: Day.Day) {
      const now = yield* Clock.currentTimeMillis
      yield* sql`INSERT INTO reported_days ${sql.insert({ day, reported: now })}
        ON CONFLICT (day) DO UPDATE SET reported = excluded.reported`
    }, fromSqlError("ResultStore.markDayReported"))

    const lastReportedDay = sql<{ readonly day: string | null }>`SELECT MAX(day) AS day FROM reported_days`.pipe(
      Effect.map((rows) => (rows[0]?.day ?? undefined) as Day.Day | undefined),
      fromSqlError("ResultStore.lastReportedDay"),
      Effect.withSpan("ResultStore.lastReportedDay")
    )

    // docs/design.md#stale-cleanup.
    const deleteBefore = Effect.fn("ResultStore.deleteBefore")(function* (day: Day.Day) {
      return yield* countAndDelete(sql.and([sql`day < ${day}`]))
    }, fromSqlError("ResultStore.deleteBefore"))

    return {
      addResults,
      keysUpTo,
      rowsOfKeys,
      listResults,
      markSentAndEnqueueAll,
      deleteKeys,
      deleteBefore,
      markDayReported,
      lastReportedDay
    }
  })

/** The port on the ambient `SqlClient`, in that client's dialect. */
export const layer = (dialect: Dialect): Layer.Layer<ResultStore, never, SqlClient.SqlClient | OutboxSignal> =>
  Layer.effect(ResultStore, make(dialect))
