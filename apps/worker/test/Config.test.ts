import { readFileSync } from "node:fs"
import * as NodePath from "node:path"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { generateDkimKeyPair } from "@tlsrpt/mail"
import { Duration, Effect, Either, Redacted, Schema } from "effect"
import * as Config from "../src/Config.js"

const decodeError = (json: unknown, env: Record<string, string> = {}) => {
  const merged = Either.getOrThrow(Config.applyEnv(json as Record<string, unknown>, env))
  const decoded = Config.decode(merged.json, merged.sources)
  assert.isTrue(Either.isLeft(decoded), "expected a config error")
  return (decoded as Either.Left<Config.ConfigError, unknown>).left
}

const resolved = (json: unknown, env: Record<string, string> = {}, configFile?: string) => {
  const merged = Either.getOrThrow(Config.applyEnv(json as Record<string, unknown>, env))
  const file = Either.getOrThrow(Config.decode(merged.json, merged.sources))
  return Config.resolve(file, { configFile, cwd: "/work", sources: merged.sources })
}

describe("Config", () => {
  it("the embedded default: ./data, SQLite, dir transport into ./data/outbox, system DNS, loopback admin", () => {
    const c = Either.getOrThrow(resolved({}))
    assert.strictEqual(c.dataDir, "/work/data")
    assert.strictEqual(c.database, "/work/data/tlsrpt.db")
    assert.deepStrictEqual(c.transport, { type: "dir", dir: "/work/data/outbox" })
    assert.deepStrictEqual(c.dns.servers, [])
    assert.deepStrictEqual(c.http.listen, { host: "127.0.0.1", port: 8470 })
    assert.isUndefined(c.http.token)
    assert.isUndefined(c.submitter)
    assert.isTrue(c.reports.enabled)
    assert.isFalse(c.reports.forAllSuccess)
    assert.strictEqual(Duration.toMillis(c.reports.window), 4 * 3_600_000)
    assert.strictEqual(Duration.toMillis(c.reports.maxGap), 300_000)
    assert.deepStrictEqual(Config.sendingBlocker(c)?.key, "submitter")
  })

  it("collector: the socket defaults to <dataDir>/tlsrpt.sock; null or an empty TLSRPT_COLLECTOR_SOCKET turns it off", () => {
    const c = Either.getOrThrow(resolved({}))
    assert.deepStrictEqual(c.collector, {
      socket: "/work/data/tlsrpt.sock",
      socketMode: 0o660,
      socketGroup: undefined,
      invalidDatagramDir: "/work/data/invalid-datagrams"
    })
    assert.isUndefined(Either.getOrThrow(resolved({ collector: { socket: null } })).collector.socket)
    assert.isUndefined(Either.getOrThrow(resolved({}, { TLSRPT_COLLECTOR_SOCKET: "" })).collector.socket)
    const env = Either.getOrThrow(
      resolved({ collector: { socketMode: "0620", socketGroup: 115 } }, { TLSRPT_COLLECTOR_SOCKET: "run/t.sock" })
    )
    assert.strictEqual(env.collector.socket, "/work/run/t.sock")
    assert.strictEqual(env.collector.socketMode, 0o620)
    assert.strictEqual(env.collector.socketGroup, 115)
    const bad = decodeError({ collector: { socketMode: "rw-rw----" } })
    assert.strictEqual(bad.key, "collector.socketMode")
  })

  it("relative paths in the file resolve against the file's directory", () => {
    const c = Either.getOrThrow(
      resolved(
        {
          dataDir: "state",
          dkim: [{ domain: "example.com", selector: "s1", privateKeyFile: "keys/s1.pem", algorithm: "rsa-sha256" }],
          transport: { type: "dir", dir: "out" }
        },
        {},
        "/etc/tlsrpt/tlsrpt.json"
      )
    )
    assert.strictEqual(c.dataDir, "/etc/tlsrpt/state")
    assert.strictEqual(c.database, "/etc/tlsrpt/state/tlsrpt.db")
    assert.strictEqual(c.dkim[0]!.privateKeyFile, "/etc/tlsrpt/keys/s1.pem")
    assert.deepStrictEqual(c.transport, { type: "dir", dir: "/etc/tlsrpt/out" })
  })

  it("environment variables override keys; their paths resolve against the working directory", () => {
    const c = Either.getOrThrow(
      resolved(
        { dataDir: "state", http: { token: "x".repeat(20) } },
        {
          TLSRPT_DATA_DIR: "other",
          TLSRPT_DNS_SERVERS: "127.0.0.1:5353, [::1]:53",
          TLSRPT_DNS_TRIES: "2",
          TLSRPT_REPORTS_FOR_ALL_SUCCESS: "true",
          TLSRPT_REPORTS_WINDOW: "2h",
          TLSRPT_HTTP_LISTEN: "0.0.0.0:9000",
          TLSRPT_HTTP_TOKEN: "y".repeat(20),
          TLSRPT_TRANSPORT_URL: "smtp://relay.example:2525",
          TLSRPT_SUBMITTER_DOMAIN: "Example.COM"
        },
        "/etc/tlsrpt/tlsrpt.json"
      )
    )
    assert.strictEqual(c.dataDir, "/work/other")
    assert.deepStrictEqual(c.dns.servers, [
      { host: "127.0.0.1", port: 5353 },
      { host: "::1", port: 53 }
    ])
    assert.strictEqual(c.dns.tries, 2)
    assert.isTrue(c.reports.forAllSuccess)
    assert.strictEqual(Duration.toMillis(c.reports.window), 7_200_000)
    assert.deepStrictEqual(c.http.listen, { host: "0.0.0.0", port: 9000 })
    assert.strictEqual(Redacted.value(c.http.token!), "y".repeat(20))
    assert.deepStrictEqual(c.transport, { type: "smtp", url: "smtp://relay.example:2525" })
    assert.strictEqual(c.submitter?.domain.ascii, "example.com")
    assert.strictEqual(c.submitter?.contactInfo, "postmaster@example.com")
  })

  it("an unknown key is refused and named, at any depth", () => {
    assert.strictEqual(decodeError({ bogus: 1 }).message, "config: bogus: unknown key")
    assert.strictEqual(decodeError({ dns: { server: [] } }).message, "config: dns.server: unknown key")
    assert.strictEqual(
      decodeError({
        dkim: [{ domain: "a.example", selector: "s", privateKeyFile: "k", algorithm: "rsa-sha256", extra: true }]
      }).key,
      "dkim[0].extra"
    )
  })

  it("bad values name their key", () => {
    assert.strictEqual(decodeError({ transport: { type: "smtp", url: "http://x" } }).key, "transport.url")
    assert.strictEqual(decodeError({ transport: { type: "smtp", url: "not a url" } }).key, "transport.url")
    assert.strictEqual(decodeError({ transport: { type: "smtp" } }).key, "transport.url")
    assert.strictEqual(decodeError({ dns: { servers: ["1.2.3.4:70000"] } }).key, "dns.servers[0]")
    assert.strictEqual(decodeError({ http: { listen: "nowhere" } }).key, "http.listen")
    assert.strictEqual(decodeError({ http: { token: "short" } }).key, "http.token")
    assert.strictEqual(decodeError({ reports: { window: "soon" } }).key, "reports.window")
    assert.strictEqual(decodeError({ submitter: { domain: "not a domain" } }).key, "submitter.domain")
    assert.strictEqual(
      decodeError({ dkim: [{ domain: "a.example", selector: "s", privateKeyFile: "k", algorithm: "rsa" }] }).key,
      "dkim[0].algorithm"
    )
  })

  it("durations and DNS servers are bounded to what the schedule and node:dns can use (issue 11 points 6, 7)", () => {
    const reason = (json: unknown) => decodeError(json).reason
    assert.match(reason({ reports: { jitterMax: "25d" } }), /^expected a duration between 0 and 1h, got 25d/)
    assert.strictEqual(decodeError({ reports: { jitterMin: "2h" } }).key, "reports.jitterMin")
    assert.strictEqual(decodeError({ reports: { maxGap: "2h" } }).key, "reports.maxGap")
    assert.strictEqual(decodeError({ reports: { window: "1d" } }).key, "reports.window")
    assert.strictEqual(decodeError({ dns: { timeoutMs: 3_000_000 } }).key, "dns.timeoutMs")
    const host = decodeError({ dns: { servers: ["10.0.0.1", "resolver.example:53"] } })
    assert.strictEqual(host.key, "dns.servers[1]")
    assert.match(host.reason, /^expected an IP address/)
    assert.isTrue(Config.isSelector("tlsrpt") && Config.isSelector("s1._x-y.2024"))
    for (const bad of ["../x", "a/b", "-a", "a-", "", "a..b", "a".repeat(64), "a b"])
      assert.isFalse(Config.isSelector(bad), bad)
  })

  it("an error from an environment variable names the variable too", () => {
    const e = decodeError({}, { TLSRPT_DNS_TIMEOUT_MS: "soon" })
    assert.strictEqual(e.key, "dns.timeoutMs")
    assert.strictEqual(e.env, "TLSRPT_DNS_TIMEOUT_MS")
    assert.match(e.message, /^config: dns\.timeoutMs \(from TLSRPT_DNS_TIMEOUT_MS\): /)
  })

  it("database: a SQLite path (string or { type: sqlite }), { type: postgres, url }, or TLSRPT_DATABASE_URL", () => {
    const sqlite = Either.getOrThrow(resolved({ database: { type: "sqlite", file: "state/t.db" } }))
    assert.deepStrictEqual(sqlite.databaseConfig, { type: "sqlite", file: "/work/state/t.db" })
    assert.strictEqual(sqlite.database, "/work/state/t.db")
    const plain = Either.getOrThrow(resolved({ database: "state/t.db" }))
    assert.deepStrictEqual(plain.databaseConfig, sqlite.databaseConfig)

    const pg = Either.getOrThrow(
      resolved({ database: { type: "postgres", url: "postgres://u:secret@db:5432/tlsrpt" } })
    )
    assert.strictEqual(pg.databaseConfig.type, "postgres")
    if (pg.databaseConfig.type === "postgres")
      assert.strictEqual(Redacted.value(pg.databaseConfig.url), "postgres://u:secret@db:5432/tlsrpt")
    // The password never reaches a log line.
    assert.strictEqual(pg.database, "postgres://u:***@db:5432/tlsrpt")

    const fromEnv = Either.getOrThrow(
      resolved({ database: "state/t.db" }, { TLSRPT_DATABASE_URL: "postgresql://db/tlsrpt" })
    )
    assert.strictEqual(fromEnv.database, "postgresql://db/tlsrpt")
    const bad = decodeError({}, { TLSRPT_DATABASE_URL: "mysql://db/tlsrpt" })
    assert.strictEqual(bad.env, "TLSRPT_DATABASE_URL")
    assert.isTrue(
      Either.isLeft(Config.applyEnv({}, { TLSRPT_DATABASE_URL: "postgres://db/x", TLSRPT_DATABASE: "x.db" }))
    )
  })

  it("cross-key rules: a PostgreSQL URL as a SQLite path, contact-info domain, jitter bounds", () => {
    const key = (json: unknown) => Either.flip(resolved(json)).pipe(Either.getOrThrow).key
    assert.strictEqual(key({ database: "postgres://db/tlsrpt" }), "database")
    assert.strictEqual(key({ database: { type: "sqlite", file: "postgres://db/tlsrpt" } }), "database.file")
    assert.strictEqual(
      key({ submitter: { domain: "example.com", contactInfo: "ops@other.example" } }),
      "submitter.contactInfo"
    )
    assert.strictEqual(key({ submitter: { domain: "example.com", from: "tlsrpt@other.example" } }), "submitter.from")
    assert.strictEqual(key({ reports: { jitterMin: "10m", jitterMax: "5m" } }), "reports.jitterMin")
  })

  it("delivery: ~24 h of capped backoff by default; file keys and environment variables; bounds", () => {
    const d = Either.getOrThrow(resolved({})).delivery
    assert.deepStrictEqual(
      [d.attempts, Duration.toMillis(d.backoff), Duration.toMillis(d.maxBackoff), d.httpsAllowPrivate],
      [11, 450_000, 4 * 3_600_000, false]
    )
    const f = Either.getOrThrow(
      resolved({ delivery: { attempts: 3, backoff: "1m", maxBackoff: "10m", httpsAllowPrivate: true } })
    ).delivery
    assert.deepStrictEqual(
      [f.attempts, Duration.toMillis(f.backoff), Duration.toMillis(f.maxBackoff), f.httpsAllowPrivate],
      [3, 60_000, 600_000, true]
    )
    const env = Either.getOrThrow(
      resolved(
        { delivery: { attempts: 3 } },
        {
          TLSRPT_DELIVERY_ATTEMPTS: "20",
          TLSRPT_DELIVERY_BACKOFF: "5m",
          TLSRPT_DELIVERY_MAX_BACKOFF: "6h",
          TLSRPT_DELIVERY_HTTPS_ALLOW_PRIVATE: "yes"
        }
      )
    ).delivery
    assert.deepStrictEqual(
      [env.attempts, Duration.toMillis(env.backoff), Duration.toMillis(env.maxBackoff), env.httpsAllowPrivate],
      [20, 300_000, 6 * 3_600_000, true]
    )
    assert.strictEqual(decodeError({}, { TLSRPT_DELIVERY_ATTEMPTS: "0" }).key, "delivery.attempts")
    const key = (json: unknown) => Either.flip(resolved(json)).pipe(Either.getOrThrow).key
    assert.strictEqual(key({ delivery: { backoff: "10m", maxBackoff: "5m" } }), "delivery.maxBackoff")
    assert.strictEqual(key({ delivery: { backoff: "10ms" } }), "delivery.backoff")
  })

  it("cluster: the shard lease (35 s) and the retention of processed messages (7 days) by default; bounds name their key", () => {
    const c = Either.getOrThrow(resolved({ cluster: { runnerAddress: "10.0.0.5:34431" } }))
    assert.deepStrictEqual(c.cluster, {
      runnerAddress: { host: "10.0.0.5", port: 34431 },
      shards: 300,
      leaseSeconds: 35,
      retainDays: 7
    })
    const set = Either.getOrThrow(
      resolved({ cluster: { runnerAddress: "10.0.0.5:34431", leaseSeconds: 20, retainDays: 30 } })
    )
    assert.strictEqual(set.cluster?.leaseSeconds, 20)
    assert.strictEqual(set.cluster?.retainDays, 30)
    assert.strictEqual(decodeError({ cluster: { runnerAddress: "a:1", leaseSeconds: 4 } }).key, "cluster.leaseSeconds")
    assert.strictEqual(
      decodeError({ cluster: { runnerAddress: "a:1", leaseSeconds: 601 } }).key,
      "cluster.leaseSeconds"
    )
    assert.strictEqual(decodeError({ cluster: { runnerAddress: "a:1", retainDays: 0 } }).key, "cluster.retainDays")
  })

  it("durations: 4h, 5m, 240s, 1500ms, 1d and effect's long form", () => {
    const d = (s: string) => Duration.toMillis(Either.getOrThrow(resolved({ reports: { window: s } })).reports.window)
    assert.strictEqual(d("4h"), 14_400_000)
    assert.strictEqual(d("5m"), 300_000)
    assert.strictEqual(d("240s"), 240_000)
    assert.strictEqual(d("1500ms"), 1500)
    assert.strictEqual(Duration.toMillis(Schema.decodeSync(Config.DurationString)("1d")), 86_400_000)
    assert.strictEqual(d("3 hours"), 10_800_000)
  })

  it.scoped("load: a missing or unreadable key file fails naming the key; a valid one is loaded", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = NodePath.join(dir, "tlsrpt.json")
      const dkim = (privateKeyFile: string) => ({
        submitter: { domain: "example.com" },
        dkim: [{ domain: "example.com", selector: "tlsrpt", privateKeyFile, algorithm: "ed25519-sha256" }]
      })
      yield* fs.writeFileString(file, JSON.stringify(dkim("missing.pem")))
      const missing = yield* Effect.flip(Config.load({ configFile: file, env: {}, cwd: "/" }))
      assert.strictEqual(missing.key, "dkim[0].privateKeyFile")

      yield* fs.writeFileString(NodePath.join(dir, "bad.pem"), "not a key")
      yield* fs.writeFileString(file, JSON.stringify(dkim("bad.pem")))
      const bad = yield* Effect.flip(Config.load({ configFile: file, env: {}, cwd: "/" }))
      assert.strictEqual(bad.key, "dkim[0].privateKeyFile")

      const pair = yield* generateDkimKeyPair("ed25519-sha256")
      yield* fs.writeFileString(NodePath.join(dir, "good.pem"), pair.privateKeyPem)
      yield* fs.writeFileString(file, JSON.stringify(dkim("good.pem")))
      // TLSRPT_CONFIG names the file when --config is absent
      const config = yield* Config.load({ configFile: undefined, env: { TLSRPT_CONFIG: file }, cwd: "/" })
      assert.strictEqual(config.configFile, file)
      assert.strictEqual(config.dkimKeys.length, 1)
      assert.strictEqual(config.dkimKeys[0]!.selector, "tlsrpt")
      assert.isUndefined(Config.sendingBlocker(config))
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("load: a missing file, non-JSON or a non-object is a config error on --config / TLSRPT_CONFIG", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const missing = yield* Effect.flip(
        Config.load({ configFile: undefined, env: { TLSRPT_CONFIG: NodePath.join(dir, "none.json") }, cwd: dir })
      )
      assert.strictEqual(missing.key, "TLSRPT_CONFIG")
      yield* fs.writeFileString(NodePath.join(dir, "x.json"), "{ nope")
      const notJson = yield* Effect.flip(Config.load({ configFile: "x.json", env: {}, cwd: dir }))
      assert.strictEqual(notJson.key, "--config")
      assert.match(notJson.reason, /not JSON/)
      yield* fs.writeFileString(NodePath.join(dir, "y.json"), "[]")
      const array = yield* Effect.flip(Config.load({ configFile: "y.json", env: {}, cwd: dir }))
      assert.match(array.reason, /JSON object/)
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it("deploy/config.example.json uses every key and is valid", () => {
    const file = NodePath.resolve(import.meta.dirname, "../../../deploy/config.example.json")
    const json = JSON.parse(readFileSync(file, "utf8"))
    const c = Either.getOrThrow(resolved(json, {}, file))
    assert.strictEqual(c.submitter?.domain.ascii, "mail.example.com")
    assert.deepStrictEqual(
      c.dkim.map((k) => k.algorithm),
      ["rsa-sha256", "ed25519-sha256"]
    )
    assert.deepStrictEqual(c.transport, { type: "smtp", url: "smtp://127.0.0.1:25" })
    assert.deepStrictEqual(c.collector, {
      socket: "/var/spool/postfix/run/tlsrpt/tlsrpt.sock",
      socketMode: 0o660,
      socketGroup: "postfix",
      invalidDatagramDir: "/var/lib/tlsrpt/invalid-datagrams"
    })
    assert.deepStrictEqual(Object.keys(json).sort(), [
      "collector",
      "dataDir",
      "database",
      "delivery",
      "dkim",
      "dns",
      "http",
      "reports",
      "submitter",
      "transport"
    ])
  })

  it("parseHostPort: v4, v6 in brackets, names; bare hosts only with a default port", () => {
    assert.deepStrictEqual(Config.parseHostPort("127.0.0.1:8470"), Either.right({ host: "127.0.0.1", port: 8470 }))
    assert.deepStrictEqual(Config.parseHostPort("[::1]:53"), Either.right({ host: "::1", port: 53 }))
    assert.deepStrictEqual(Config.parseHostPort("localhost:0"), Either.right({ host: "localhost", port: 0 }))
    assert.deepStrictEqual(Config.parseHostPort("9.9.9.9", 53), Either.right({ host: "9.9.9.9", port: 53 }))
    assert.isTrue(Either.isLeft(Config.parseHostPort("9.9.9.9")))
    assert.isTrue(Either.isLeft(Config.parseHostPort("host:port")))
  })
})
