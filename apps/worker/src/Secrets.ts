/**
 * File modes of the worker's secrets (DKIM private keys, the generated admin token): a key readable by
 * other local users lets them sign mail as the submitter domain, a token lets them drive the admin API.
 * A file readable by group or others is a warning, and with `--strict` a configuration error (exit 2),
 * so a deployment can insist on it.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import { ConfigError } from "./Config.js"

export interface SecretFile {
  /** The config key that names it, e.g. `dkim[0].privateKeyFile` or `http.token`. */
  readonly key: string
  readonly path: string
}

/** `0o640` → `"0640"`. */
const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, "0")}`

/** Warns about (or with `strict`, refuses) each file readable or writable by group or others. */
export const checkModes = (files: ReadonlyArray<SecretFile>, options: { readonly strict: boolean }) =>
  Effect.forEach(
    files,
    (f) =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const info = yield* fs.stat(f.path).pipe(Effect.option)
        if (info._tag === "None" || (info.value.mode & 0o077) === 0) return
        const reason = `${f.path} is accessible by group or others (mode ${octal(info.value.mode)}); chmod 600 it`
        if (options.strict) return yield* new ConfigError({ key: f.key, reason: `${reason} (--strict)` })
        yield* Effect.logWarning(`secret file: ${reason}`).pipe(Effect.annotateLogs({ key: f.key }))
      }),
    { discard: true }
  )
