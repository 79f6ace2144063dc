/**
 * Versioned schema of the store, run by `@effect/sql`'s dialect-neutral `Migrator` (it records each
 * applied id in `effect_sql_migrations`, so a reopen runs nothing twice).
 *
 * Portable column types: TEXT, INTEGER (booleans as 0/1), BIGINT for epoch-millisecond times (a
 * PostgreSQL INTEGER is 32 bits; SQLite gives BIGINT integer affinity). Ids, payload bytes and domain
 * columns are spelled by the dialect (`Dialect.types`; domains compare in byte order,
 * docs/design.md#ordering): write new migrations with those and plain portable SQL, never for one
 * database only.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { Dialect } from "./Dialect.js"

export const migrations = (dialect: Dialect): Migrator.Loader => {
  const t = (role: keyof Dialect["types"]) =>
    SqlClient.SqlClient.pipe(Effect.map((sql) => sql.literal(dialect.types[role])))
  return Migrator.fromRecord({
    // docs/design.md#result-rows: one row per (policy domain, UTC day, recipient domain). Phase 1 reads
    // rows in id order (docs/design.md#ordering): a new id is one above the largest present, so ids of
    // live rows follow insertion.
    "1_results": Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE results (
      id ${yield* t("rowId")},
      policy_domain ${yield* t("domain")} NOT NULL,
      day TEXT NOT NULL,
      recipient_domain ${yield* t("domain")} NOT NULL,
      is_host INTEGER NOT NULL,
      send_report INTEGER NOT NULL,
      sent_to_recipient_domain INTEGER NOT NULL DEFAULT 0,
      sent_to_policy_domain INTEGER NOT NULL DEFAULT 0,
      recipient_domain_reporting_addresses TEXT NOT NULL DEFAULT '[]',
      results TEXT NOT NULL,
      created BIGINT NOT NULL,
      updated BIGINT NOT NULL,
      UNIQUE (policy_domain, day, recipient_domain)
    )`
      // Phase 1 fetch (docs/design.md#ordering): equal index entries are ordered by id, so no sort is needed.
      yield* sql`CREATE INDEX results_recipient_domain_day ON results (recipient_domain, day)`
    }),
    // docs/design.md#suppression-list, with addresses normalised (docs/design.md#normalised-suppression-addresses).
    "2_suppressions": Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE suppressions (
      id ${yield* t("serialId")},
      address TEXT NOT NULL UNIQUE,
      until BIGINT NOT NULL,
      comment TEXT NOT NULL DEFAULT '',
      inserted BIGINT NOT NULL
    )`
    }),
    // docs/design.md#one-transaction-for-mark-and-outbox: rows are marked sent and their messages
    // enqueued in one transaction. UNIQUE (report_id, destination) makes enqueueing the same report
    // twice a no-op.
    "3_outbox": Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE outbox (
      id ${yield* t("serialId")},
      kind TEXT NOT NULL,
      destination TEXT NOT NULL,
      envelope_from TEXT NOT NULL,
      payload ${yield* t("bytes")} NOT NULL,
      report_id TEXT NOT NULL,
      policy_domain ${yield* t("domain")} NOT NULL,
      day TEXT NOT NULL,
      status TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at BIGINT NOT NULL,
      last_error TEXT,
      created BIGINT NOT NULL,
      updated BIGINT NOT NULL,
      UNIQUE (report_id, destination)
    )`
      yield* sql`CREATE INDEX outbox_status_next_attempt ON outbox (status, next_attempt_at)`
    }),
    // The days whose scheduled round completed, so that a round ending after midnight does not make the
    // schedule skip a day (docs/design.md#schedule-catch-up).
    "4_reported_days": Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE reported_days (
      day TEXT PRIMARY KEY,
      reported BIGINT NOT NULL
    )`
    }),
    // A lease on a queued message (`claimDue`): the process that holds it until `lease_until` is the
    // only one to attempt it, so any number of processes on one database deliver each message once.
    "5_outbox_lease": Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`ALTER TABLE outbox ADD COLUMN lease_owner TEXT`
      yield* sql`ALTER TABLE outbox ADD COLUMN lease_until BIGINT`
    }),
    // What `claimDue` and `nextDueAt` read of the queued messages, in one index: `lease_until` is the
    // record's last column, behind the payload, so reading it from the table read each queued
    // message's payload pages (SQLite keeps a 6 kB payload on overflow pages): `nextDueAt`, run after
    // every delivery pass, took ~2.4 ms with 10,000 messages queued, ~0.5 ms with this index. It
    // covers the old index's columns, which goes.
    "6_outbox_due": Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE INDEX outbox_due ON outbox (status, next_attempt_at, lease_until)`
      yield* sql`DROP INDEX outbox_status_next_attempt`
    })
  })
}

/** Applies the pending migrations, one process at a time; returns the ones it ran. */
export const run = (dialect: Dialect) => dialect.exclusive(Migrator.make({})({ loader: migrations(dialect) }))
