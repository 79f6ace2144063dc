/**
 * Logs: one line per event. JSON when the stream is not a terminal (journald, containers, files),
 * logfmt for people at a terminal. The worker logs to stdout; the one-shot commands log to stderr so
 * their stdout stays machine-readable (`results --json`, `outbox --json`).
 */
import { Layer, Logger, LogLevel } from "effect"

export interface LogOptions {
  readonly stream: "stdout" | "stderr"
  /** Force JSON (true) or logfmt (false); default: JSON unless the stream is a terminal. */
  readonly json?: boolean | undefined
  readonly level?: LogLevel.LogLevel | undefined
}

export const layer = (options: LogOptions): Layer.Layer<never> => {
  const target = options.stream === "stdout" ? process.stdout : process.stderr
  const json = options.json ?? !target.isTTY
  const base = json ? Logger.jsonLogger : Logger.logfmtLogger
  const logger = options.stream === "stdout" ? Logger.withConsoleLog(base) : Logger.withConsoleError(base)
  return Layer.merge(
    Logger.replace(Logger.defaultLogger, logger),
    Logger.minimumLogLevel(options.level ?? LogLevel.Info)
  )
}
