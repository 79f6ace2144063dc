/**
 * The suppression list (docs/design.md#suppression-list): mail addresses and https reporting URIs that
 * get no report until a date. A port: the SQL layers are `Store.layer` / `Store.layerPg` /
 * `Store.layerMemory`. Entries are stored in one normal form (docs/design.md#normalised-suppression-addresses):
 * every method normalises the address it is given before matching.
 */
import { Context, type Effect } from "effect"
import type { InvalidAddress, StoreError } from "./StoreError.js"

export interface Suppression {
  readonly id: number
  /** A mail address (lower case, A-label domain) or an https URL (WHATWG form). */
  readonly address: string
  readonly until: Date
  readonly comment: string
  readonly inserted: Date
}

export class SuppressionList extends Context.Tag("@tlsrpt/store/SuppressionList")<
  SuppressionList,
  {
    /** Suppresses `address` until `until`; adding an address again replaces its until and comment. */
    readonly add: (entry: {
      readonly address: string
      readonly until: Date
      readonly comment?: string | undefined
    }) => Effect.Effect<Suppression, StoreError | InvalidAddress>
    /** Every entry, newest first (expired ones included: the operator removes them). */
    readonly list: Effect.Effect<ReadonlyArray<Suppression>, StoreError>
    /** Removes the entry; false when there was none. */
    readonly remove: (address: string) => Effect.Effect<boolean, StoreError | InvalidAddress>
    /**
     * Active when `until > at` (docs/design.md#suppression-and-queueing). An address that does not parse
     * is not suppressed: `add` refuses such an address.
     */
    readonly isSuppressed: (address: string, at: Date) => Effect.Effect<boolean, StoreError>
  }
>() {}
