/**
 * SQLite's spellings (`@effect/sql-sqlite-node`, better-sqlite3). One connection and one writer: a
 * transaction has the database to itself, so nothing needs locking and no transaction loses a race.
 * Another process on the same file waits at BEGIN (`WriteTransactions.ts`).
 */
import { identity } from "effect/Function"
import type { Dialect } from "../Dialect.js"
import { immediate } from "./WriteTransactions.js"

export const dialect: Dialect = {
  name: "sqlite",
  types: {
    // The rowid alias: a new row gets one above the largest present. No AUTOINCREMENT: with it every
    // upsert that merges into an existing row burns an id.
    rowId: "INTEGER PRIMARY KEY",
    serialId: "INTEGER PRIMARY KEY AUTOINCREMENT",
    bytes: "BLOB",
    // SQLite's default BINARY collation is byte order.
    domain: "TEXT"
  },
  lockRows: "",
  skipLocked: "",
  lockWriters: undefined,
  insertRaces: false,
  exclusive: identity,
  transactions: immediate,
  isTransientConflict: () => false
}
