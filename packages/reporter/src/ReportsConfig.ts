/**
 * The `reports` section of a configuration file, decoded into what the reporter takes whole
 * (`ReporterConfig`, for `ReporterLive.layer` and `ReporterSchedule.layer`) plus whether reporting and
 * collection run at all. A key left out keeps the reporter's own default (`defaultConfig`,
 * docs/design.md#pacing).
 */
import { DurationString } from "@tlsrpt/core"
import { Data, Duration, Either, Schema } from "effect"
import { defaultConfig, type ReporterConfig } from "./Reporter.js"

// The round's window must end before the next day's round starts; gap and jitter become timers.
const window = DurationString.bounded(Duration.zero, Duration.hours(23))
const upToAnHour = DurationString.bounded(Duration.zero, Duration.hours(1))

export const schema = Schema.Struct({
  enabled: Schema.optional(Schema.Boolean),
  collect: Schema.optional(Schema.Boolean),
  forAllSuccess: Schema.optional(Schema.Boolean),
  https: Schema.optional(Schema.Boolean),
  window: Schema.optional(window),
  maxGap: Schema.optional(upToAnHour),
  jitterMin: Schema.optional(upToAnHour),
  jitterMax: Schema.optional(upToAnHour)
})
export type Section = typeof schema.Type

/** The reporter's settings, plus whether reports are sent (`enabled`) and results collected (`collect`). */
export type Reports = ReporterConfig & { readonly enabled: boolean; readonly collect: boolean }

/** A rule across keys of the section; `key` is the key within it (`jitterMin`). */
export class ReportsConfigError extends Data.TaggedError("ReportsConfigError")<{
  readonly key: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.key}: ${this.reason}`
  }
}

/** The section over the defaults, key by key; the wake-up jitter's range must not be empty. */
export const resolve = (section: Section = {}): Either.Either<Reports, ReportsConfigError> => {
  const { enabled = true, collect = true, ...round } = section
  const given = Object.fromEntries(Object.entries(round).filter(([, v]) => v !== undefined))
  const reports: Reports = { ...defaultConfig, ...given, enabled, collect }
  return Duration.greaterThan(reports.jitterMin, reports.jitterMax)
    ? Either.left(new ReportsConfigError({ key: "jitterMin", reason: "must not be greater than jitterMax" }))
    : Either.right(reports)
}
