/**
 * A UTC calendar day, `YYYY-MM-DD`: the unit of aggregation and of one report (RFC 8460 §4.1:
 * a report SHOULD cover a full UTC day).
 */
import { type Brand, Either, Schema } from "effect"

export type Day = string & Brand.Brand<"Day">

const DAY_MS = 86_400_000
const PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/

const valid = (s: string): boolean => {
  const m = PATTERN.exec(s)
  if (m === null) return false
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999.
  const d = new Date(0)
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  return d.toISOString().slice(0, 10) === s
}

export const Day = Schema.String.pipe(
  Schema.filter(valid, { message: (s) => `expected a UTC day YYYY-MM-DD, got ${JSON.stringify(s.actual)}` }),
  Schema.brand("Day")
)

export const parse = (s: string): Either.Either<Day, string> =>
  valid(s) ? Either.right(s as Day) : Either.left(`expected a UTC day YYYY-MM-DD, got ${JSON.stringify(s)}`)

/** The UTC day that contains the instant `ms` (epoch milliseconds). */
export const fromMillis = (ms: number): Day =>
  new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10) as Day

/** 00:00:00 UTC of the day, epoch milliseconds. */
export const startMillis = (day: Day): number => Date.parse(`${day}T00:00:00Z`)

/** 00:00:00 UTC of the next day, epoch milliseconds (exclusive end of the day). */
export const endMillis = (day: Day): number => startMillis(day) + DAY_MS

export const addDays = (day: Day, n: number): Day => fromMillis(startMillis(day) + n * DAY_MS)

/** `YYYYMMDD`, as used in report-ids (docs/design.md#report-header). */
export const compact = (day: Day): string => day.replaceAll("-", "")

export const DAY_MILLIS = DAY_MS

/**
 * A `fromMillis` that remembers the last day's bounds: for hot paths whose instants arrive in time
 * order (session outcomes, datagrams), where the previous day nearly always matches. One per caller.
 */
export const makeFromMillisCached = (): ((ms: number) => Day) => {
  let start = 1
  let end = 0
  let day = "" as Day
  return (ms) => {
    if (ms < start || ms >= end) {
      day = fromMillis(ms)
      start = ms - (((ms % DAY_MS) + DAY_MS) % DAY_MS)
      end = start + DAY_MS
    }
    return day
  }
}
