import { Data } from "effect"

/** A configuration error: one line naming the key (and the variable it came from); the bin exits 2. */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  /** The config key, e.g. `transport.url` or `dkim[0].privateKeyFile`; `--config` for the file itself. */
  readonly key: string
  readonly reason: string
  /** The environment variable the value came from, if any. */
  readonly env?: string | undefined
}> {
  override get message(): string {
    return `config: ${this.key}${this.env === undefined ? "" : ` (from ${this.env})`}: ${this.reason}`
  }
}
