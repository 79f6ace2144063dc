/**
 * What the bin tests share besides running the bin (`Bin.ts`): a temporary data directory, files
 * written into it, the `import` input rows, and a config that `init` wrote pointed at the loopback
 * peers (testkit's DNS server and SMTP sink).
 */
import { createServer } from "node:net"
import * as NodePath from "node:path"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"

/** A temporary directory, removed when the scope closes. */
export const tempDir = (prefix: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix }))

/** Writes `text` to `dir/name`. */
export const write = (dir: string, name: string, text: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFileString(NodePath.join(dir, name), text))

/** JSON Lines, as `import -` and `record -` read them. */
export const jsonLines = (values: ReadonlyArray<unknown>) => `${values.map((v) => JSON.stringify(v)).join("\n")}\n`

export interface ImportRowOptions {
  /** Default 2024-01-09. */
  readonly day?: string
  /** Default `sts`; `no-policy-found` has no policy string and no MX patterns. */
  readonly policyType?: "sts" | "no-policy-found"
  /** Default `["version: STSv1"]`. */
  readonly policyString?: ReadonlyArray<string>
  /** Default none. */
  readonly mxHost?: ReadonlyArray<string>
  /** Default 3. */
  readonly success?: number
  /** Default 1; each failure a `certificate-expired` one. */
  readonly failure?: number
  /** The failure detail's `receiving-mx-hostname` and `receiving-ip`; default none. */
  readonly receivingMx?: string
  readonly receivingIp?: string
}

/** One aggregate row of `tlsrpt import` (README: import), for a recipient domain that is its own policy domain. */
export const importRow = (policyDomain: string, options: ImportRowOptions = {}) => {
  const failure = options.failure ?? 1
  const policy =
    options.policyType === "no-policy-found"
      ? { "policy-type": "no-policy-found", "policy-domain": policyDomain }
      : {
          "policy-type": "sts",
          "policy-string": options.policyString ?? ["version: STSv1"],
          "policy-domain": policyDomain,
          "mx-host": options.mxHost ?? []
        }
  return {
    "policy-domain": policyDomain,
    day: options.day ?? "2024-01-09",
    "recipient-domain": policyDomain,
    "is-host": false,
    "send-report": true,
    results: [
      {
        policy,
        summary: { "total-successful-session-count": options.success ?? 3, "total-failure-session-count": failure },
        "failure-details":
          failure > 0
            ? [
                {
                  "result-type": "certificate-expired",
                  ...(options.receivingMx === undefined ? {} : { "receiving-mx-hostname": options.receivingMx }),
                  ...(options.receivingIp === undefined ? {} : { "receiving-ip": options.receivingIp }),
                  "failed-session-count": failure
                }
              ]
            : []
      }
    ]
  }
}

/** `name. IN TXT "a" "b"` (as `init` prints its records) → [name, ["a", "b"]] */
export const parseZoneLine = (line: string): readonly [string, ReadonlyArray<string>] => {
  const name = line.split(/\s+/)[0]!.replace(/\.$/, "")
  const strings = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, "$1"))
  return [name, strings]
}

/**
 * Points the `tlsrpt.json` that `init` wrote in `dir` at the loopback peers: DNS on `dns` (half a
 * second, one try), SMTP relay `smtp`, the admin HTTP on an ephemeral port; `more` adds sections.
 * Returns the file's path.
 */
export const configurePeers = (
  dir: string,
  peers: { readonly dns: string; readonly smtp: string; readonly more?: Readonly<Record<string, unknown>> }
) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const configFile = NodePath.join(dir, "tlsrpt.json")
    const config = JSON.parse(yield* fs.readFileString(configFile))
    config.dns = { servers: [peers.dns], timeoutMs: 500, tries: 1 }
    config.transport = { type: "smtp", url: peers.smtp }
    config.http.listen = "127.0.0.1:0"
    yield* fs.writeFileString(configFile, JSON.stringify({ ...config, ...peers.more }, null, 2))
    return configFile
  })

/** A loopback port free right now (for a setting that cannot take port 0). */
export const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const a = s.address()
        s.close(() => resolve(typeof a === "object" && a !== null ? a.port : 0))
      })
    })
)
