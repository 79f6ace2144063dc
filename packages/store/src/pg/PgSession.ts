/**
 * Settings every PostgreSQL session of ours starts with, carried in the connection URL's `options`
 * parameter (libpq's `-c name=value`, which node-postgres sends at connect).
 *
 * `idle_in_transaction_session_timeout`: the server ends a session that sits inside an open
 * transaction, sending nothing, for longer. A process that is frozen (SIGSTOP, a VM paused) or cut off
 * by the network keeps its TCP connection, and with it its transaction and row locks, for as long as
 * TCP keepalive takes (hours); every other process that needs those rows waits as long. The timeout
 * ends such a session and releases its locks (docs/design.md#fleet-faults). A live process never idles
 * inside our transactions: they run their statements back to back.
 */
import { Duration } from "effect"

/** For a store used without a cluster (collectors, a single worker): a frozen writer's locks go after a minute. */
export const DEFAULT_IDLE_IN_TRANSACTION = Duration.minutes(1)

export interface Settings {
  /** `idle_in_transaction_session_timeout` (whole milliseconds; at least 1 ms). */
  readonly idleInTransaction: Duration.DurationInput
}

/** `url` with the settings appended to its `options` (kept: what it held, e.g. a `search_path`). */
export const url = (base: string, settings: Settings): string => {
  const u = new URL(base)
  const ms = Math.max(1, Math.round(Duration.toMillis(settings.idleInTransaction)))
  const options = [u.searchParams.get("options") ?? "", `-c idle_in_transaction_session_timeout=${ms}`]
  u.searchParams.set("options", options.filter((o) => o !== "").join(" "))
  return u.toString()
}
