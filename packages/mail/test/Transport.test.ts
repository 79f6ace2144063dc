import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import type { OutboxMessage } from "@tlsrpt/store"
import { HttpSink, SmtpSink } from "@tlsrpt/testkit"
import { Effect, Either, Exit, FastCheck, type Layer, Metric, MetricState, Schema } from "effect"
import {
  dirFileNames,
  isNonPublicAddress,
  TestTransport,
  Transport,
  TransportConfig,
  TransportError
} from "../src/Transport.js"
import { closedPort, gzipBody, outboxMessage, RAW } from "./Fixtures.js"

const send = (layer: Layer.Layer<Transport, unknown>, message: OutboxMessage) =>
  Effect.flatMap(Transport, (t) => t.send(message)).pipe(Effect.provide(layer))

const failure = <A>(exit: Exit.Exit<A, unknown>): TransportError => {
  assert.isTrue(Exit.isFailure(exit))
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  assert.instanceOf(error, TransportError)
  return error as TransportError
}

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "tlsrpt-transport-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

describe("Transport.layerSmtp", () => {
  it.scoped("delivers the raw bytes with envelope from = the From address and the one recipient", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make()
      const message = outboxMessage()
      yield* send(Transport.layerSmtp({ url: sink.url, hostname: "reporter.sender.example" }), message)
      const mail = yield* sink.take
      assert.strictEqual(mail.from, "postmaster@sender.example")
      assert.deepStrictEqual(mail.to, ["tlsrpt@rcpt.example"])
      assert.strictEqual(Buffer.from(mail.raw).toString(), RAW)
      assert.strictEqual(mail.clientHostname, "reporter.sender.example")
      assert.isFalse(mail.secure)
    })
  )

  it.scoped("uses STARTTLS when offered and ignores the self-signed certificate (RFC 8460 §5)", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ starttls: true })
      yield* send(Transport.layerSmtp({ url: sink.url }), outboxMessage())
      const mail = yield* sink.take
      assert.isTrue(mail.secure)
      assert.strictEqual(Buffer.from(mail.raw).toString(), RAW)
    })
  )

  it.scoped("logs in with the configured credentials, or those in the URL", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ starttls: true, auth: { user: "reporter", pass: "s3cret" } })
      yield* send(Transport.layerSmtp({ url: sink.url, auth: { user: "reporter", pass: "s3cret" } }), outboxMessage())
      assert.strictEqual((yield* sink.take).user, "reporter")
      yield* send(Transport.layerSmtp({ url: `smtp://reporter:s3cret@127.0.0.1:${sink.port}` }), outboxMessage())
      assert.strictEqual((yield* sink.take).user, "reporter")
      const wrong = yield* Effect.exit(
        send(Transport.layerSmtp({ url: sink.url, auth: { user: "reporter", pass: "nope" } }), outboxMessage())
      )
      // a refused relay login is the operator's configuration, not a verdict on the report
      assert.strictEqual(failure(wrong).code, 535)
      assert.isFalse(failure(wrong).permanent)
    })
  )

  it.scoped("5xx is permanent, 4xx temporary, each with its code", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: [550, { code: 421, at: "mail" }, { code: 554, at: "rcpt" }] })
      const layer = Transport.layerSmtp({ url: sink.url })
      const e550 = failure(yield* Effect.exit(send(layer, outboxMessage())))
      assert.isTrue(e550.permanent)
      assert.strictEqual(e550.code, 550)
      assert.strictEqual(e550.destination, "tlsrpt@rcpt.example")
      const e421 = failure(yield* Effect.exit(send(layer, outboxMessage())))
      assert.isFalse(e421.permanent)
      assert.strictEqual(e421.code, 421)
      const e554 = failure(yield* Effect.exit(send(layer, outboxMessage())))
      assert.isTrue(e554.permanent)
      assert.strictEqual(e554.code, 554)
      assert.lengthOf(yield* sink.received, 0)
    })
  )

  it.effect("a refused connection is temporary, without a code", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const error = failure(
        yield* Effect.exit(send(Transport.layerSmtp({ url: `smtp://127.0.0.1:${port}` }), outboxMessage()))
      )
      assert.isFalse(error.permanent)
      assert.isUndefined(error.code)
      assert.match(error.reason, /ECONNREFUSED|ESOCKET|ECONNECTION/)
    })
  )

  it.effect("rejects a relay URL that is not smtp: or smtps:", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(send(Transport.layerSmtp({ url: "http://relay.example" }), outboxMessage()))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        assert.strictEqual((exit.cause.error as { _tag: string })._tag, "InvalidRelayUrl")
      } else {
        assert.fail("expected InvalidRelayUrl")
      }
    })
  )

  it.scoped("counts attempts by kind and outcome", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: [451] })
      const count = (outcome: string) =>
        Effect.map(Metric.snapshot, (pairs) => {
          let total = 0
          for (const pair of pairs) {
            const tags = new Map(pair.metricKey.tags.map((t) => [t.key, t.value]))
            if (
              pair.metricKey.name === "tlsrpt_delivery_attempts_total" &&
              tags.get("kind") === "mailto" &&
              tags.get("outcome") === outcome &&
              MetricState.isCounterState(pair.metricState)
            ) {
              total += Number(pair.metricState.count)
            }
          }
          return total
        })
      const before = { delivered: yield* count("delivered"), temporary: yield* count("temporary") }
      const layer = Transport.layerSmtp({ url: sink.url })
      yield* Effect.exit(send(layer, outboxMessage()))
      yield* send(layer, outboxMessage())
      assert.isAtLeast((yield* count("temporary")) - before.temporary, 1)
      assert.isAtLeast((yield* count("delivered")) - before.delivered, 1)
    })
  )
})

describe("https reporting", () => {
  const httpsMessage = (url: string) =>
    outboxMessage({ kind: "https", destination: url, envelopeFrom: "", payload: gzipBody })

  it.scoped("POSTs the gzip body as application/tlsrpt+gzip; 2xx is delivered", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make({ script: [201] })
      yield* send(
        Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsAllowPrivate: true }),
        httpsMessage(`${http.url}/v1/tlsrpt`)
      )
      const request = yield* http.take
      assert.strictEqual(request.method, "POST")
      assert.strictEqual(request.path, "/v1/tlsrpt")
      assert.strictEqual(request.headers["content-type"], "application/tlsrpt+gzip")
      assert.deepStrictEqual(request.body, gzipBody)
    })
  )

  it.scoped("other statuses (4xx too) and timeouts are temporary", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make({ script: [500, 404, 302, "hang"] })
      const layer = Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsTimeoutMs: 200, httpsAllowPrivate: true })
      for (const status of [500, 404, 302]) {
        const error = failure(yield* Effect.exit(send(layer, httpsMessage(http.url))))
        assert.isFalse(error.permanent)
        assert.strictEqual(error.code, status)
      }
      const timeout = failure(yield* Effect.exit(send(layer, httpsMessage(http.url))))
      assert.isFalse(timeout.permanent)
      assert.isUndefined(timeout.code)
      assert.match(timeout.reason, /timeout after 200 ms/)
    })
  )

  // Issue 11.1: a policy domain's endpoint must not be able to exhaust memory or hold an attempt open.
  it.scoped("reads at most a few KB of a response: an endless 200 body is delivered and the connection dropped", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make({ script: [{ status: 200, body: "endless" }] })
      const layer = Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsTimeoutMs: 60_000, httpsAllowPrivate: true })
      const exit = yield* Effect.exit(send(layer, httpsMessage(`${http.url}/r`)))
      assert.isTrue(Exit.isSuccess(exit))
      // The client stopped reading long before the server stopped writing (socket buffers only).
      const written = yield* http.streamed
      assert.isBelow(written, 32 * 1024 * 1024)
    })
  )

  it.scoped("the timeout bounds the whole exchange; a body that never ends keeps the answered status", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make({
        script: [
          { status: 503, body: "hang" },
          { status: 200, body: "hang" }
        ]
      })
      const layer = Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsTimeoutMs: 300, httpsAllowPrivate: true })
      const e503 = failure(yield* Effect.exit(send(layer, httpsMessage(http.url))))
      assert.strictEqual(e503.code, 503)
      assert.isFalse(e503.permanent)
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(send(layer, httpsMessage(http.url)))))
    })
  )

  it.scoped("never follows a redirect", () =>
    Effect.gen(function* () {
      const target = yield* HttpSink.make()
      const http = yield* HttpSink.make({ script: [{ status: 307, headers: { location: `${target.url}/x` } }] })
      const layer = Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsAllowPrivate: true })
      const error = failure(yield* Effect.exit(send(layer, httpsMessage(http.url))))
      assert.strictEqual(error.code, 307)
      assert.isFalse(error.permanent)
      assert.lengthOf(yield* http.requests, 1)
      assert.lengthOf(yield* target.requests, 0)
    })
  )

  it.scoped("refuses loopback, private, link-local and unique-local destinations unless allowed", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make()
      const layer = Transport.layerSmtp({ url: "smtp://127.0.0.1:1" })
      const destinations = [
        http.url,
        `http://localhost:${http.port}/r`, // a name that resolves to loopback
        "https://10.1.2.3/r",
        "https://172.16.0.1/r",
        "https://192.168.1.1/r",
        "https://169.254.169.254/latest",
        "https://[::1]/r",
        "https://[fd00::1]/r",
        "https://[fe80::1]/r",
        "https://[::ffff:127.0.0.1]/r",
        "https://0.0.0.0/r"
      ]
      for (const destination of destinations) {
        const error = failure(yield* Effect.exit(send(layer, httpsMessage(destination))))
        assert.isTrue(error.permanent, destination)
        assert.match(error.reason, /not a public address/, destination)
      }
      assert.lengthOf(yield* http.requests, 0)
      const allowed = Transport.layerSmtp({ url: "smtp://127.0.0.1:1", httpsAllowPrivate: true })
      yield* send(allowed, httpsMessage(`http://localhost:${http.port}/r`))
      assert.lengthOf(yield* http.requests, 1)
    })
  )

  it.scoped("https = false fails https messages permanently without a request", () =>
    Effect.gen(function* () {
      const http = yield* HttpSink.make()
      const error = failure(
        yield* Effect.exit(
          send(Transport.layerSmtp({ url: "smtp://127.0.0.1:1", https: false }), httpsMessage(http.url))
        )
      )
      assert.isTrue(error.permanent)
      assert.strictEqual(error.reason, "https reporting disabled")
      assert.lengthOf(yield* http.requests, 0)
    })
  )
})

describe("Transport.layerDir", () => {
  it.scoped("writes <id>-<destination>.eml with its envelope .json beside it, and no temporary files", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const out = join(dir, "outbox") // created on first use
      const message = outboxMessage()
      yield* send(Transport.layerDir({ dir: out }), message)
      const names = dirFileNames(message)
      assert.strictEqual(names.payload, "7-tlsrpt@rcpt.example.eml")
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(out))).sort(), [names.payload, names.envelope].sort())
      const raw = yield* Effect.promise(() => readFile(join(out, names.payload), "utf8"))
      assert.strictEqual(raw, RAW)
      const envelope = JSON.parse(yield* Effect.promise(() => readFile(join(out, names.envelope), "utf8")))
      assert.deepStrictEqual(envelope, {
        id: 7,
        kind: "mailto",
        from: "postmaster@sender.example",
        to: ["tlsrpt@rcpt.example"],
        reportId: "20240109.rcpt.example@sender.example",
        policyDomain: "rcpt.example",
        day: "2024-01-09",
        file: names.payload
      })
    })
  )

  it.scoped("a folder removed while the worker runs is made again by the next write", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const out = join(dir, "outbox")
      // one transport (one writer thread, which made the folder once) for both writes
      yield* Effect.gen(function* () {
        const transport = yield* Transport
        yield* transport.send(outboxMessage({ id: 1 }))
        yield* Effect.promise(() => rm(out, { recursive: true }))
        yield* transport.send(outboxMessage({ id: 2 }))
      }).pipe(Effect.provide(Transport.layerDir({ dir: out })))
      const names = dirFileNames(outboxMessage({ id: 2 }))
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(out))).sort(), [names.payload, names.envelope].sort())
    })
  )

  it.scoped("writes https reports as .json.gz (a dry run sends nothing), or POSTs them with httpsMode post", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const http = yield* HttpSink.make()
      const message = outboxMessage({ id: 9, kind: "https", destination: `${http.url}/r`, payload: gzipBody })
      yield* send(Transport.layerDir({ dir }), message)
      const names = dirFileNames(message)
      assert.match(names.payload, /^9-http___127\.0\.0\.1_\d+_r\.json\.gz$/)
      const body = yield* Effect.promise(() => readFile(join(dir, names.payload)))
      assert.deepStrictEqual(new Uint8Array(body), gzipBody)
      const envelope = JSON.parse(yield* Effect.promise(() => readFile(join(dir, names.envelope), "utf8")))
      assert.strictEqual(envelope.contentType, "application/tlsrpt+gzip")
      assert.lengthOf(yield* http.requests, 0)

      yield* send(Transport.layerDir({ dir, httpsMode: "post", httpsAllowPrivate: true }), message)
      assert.deepStrictEqual((yield* http.take).body, gzipBody)

      const disabled = failure(yield* Effect.exit(send(Transport.layerDir({ dir, https: false }), message)))
      assert.isTrue(disabled.permanent)
    })
  )

  it.scoped("a write that fails at its rename leaves no temporary file and no envelope", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const message = outboxMessage()
      const names = dirFileNames(message)
      // a folder where the payload goes: the temporary file is written, its rename fails
      yield* Effect.promise(() => mkdir(join(dir, names.payload)))
      const error = failure(yield* Effect.exit(send(Transport.layerDir({ dir }), message)))
      assert.isFalse(error.permanent)
      assert.deepStrictEqual(yield* Effect.promise(() => readdir(dir)), [names.payload])
    })
  )

  it.scoped("the payload is renamed first: a failed envelope leaves the payload and no temporary", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const message = outboxMessage()
      const names = dirFileNames(message)
      // a folder where the envelope goes: both temporary files are written, the payload's rename
      // succeeds, the envelope's fails (no envelope: the pair is not complete for a reader)
      yield* Effect.promise(() => mkdir(join(dir, names.envelope)))
      const error = failure(yield* Effect.exit(send(Transport.layerDir({ dir }), message)))
      assert.isFalse(error.permanent)
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(dir))).sort(), [names.payload, names.envelope].sort())
      assert.deepStrictEqual(
        new Uint8Array(yield* Effect.promise(() => readFile(join(dir, names.payload)))),
        message.payload
      )
    })
  )

  it.scoped("a folder that cannot be written is a temporary failure", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = join(dir, "not-a-folder")
      yield* Effect.promise(() => writeFile(file, "x"))
      const error = failure(
        yield* Effect.exit(send(Transport.layerDir({ dir: join(file, "outbox") }), outboxMessage()))
      )
      assert.isFalse(error.permanent)
      assert.match(error.reason, /^writing to .*ENOTDIR/)
    })
  )
})

describe("Transport.layerTest", () => {
  it.effect("captures attempts and follows per-destination and global scripts", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const test = yield* TestTransport
      yield* test.script([{ permanent: true, code: 550 }], "bad@x.example")
      const a = outboxMessage({ id: 1, destination: "a@x.example" })
      const bad = outboxMessage({ id: 2, destination: "bad@x.example" })
      const r1 = yield* Effect.exit(transport.send(a))
      const r2 = yield* Effect.exit(transport.send(bad))
      const r3 = yield* Effect.exit(transport.send(bad))
      const r4 = yield* Effect.exit(transport.send(a))
      assert.isFalse(failure(r1).permanent)
      assert.strictEqual(failure(r2).code, 550)
      assert.isTrue(Exit.isSuccess(r3))
      assert.isTrue(Exit.isSuccess(r4))
      assert.deepStrictEqual(
        (yield* test.attempts).map((m) => m.id),
        [1, 2, 2, 1]
      )
      assert.deepStrictEqual(
        (yield* test.sent).map((m) => m.id),
        [2, 1]
      )
    }).pipe(Effect.provide(Transport.layerTest([{ permanent: false, code: 451 }])))
  )
})

describe("isNonPublicAddress", () => {
  it("public unicast is allowed, special-purpose ranges are not", () => {
    for (const a of ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "::ffff:8.8.8.8"]) {
      assert.isFalse(isNonPublicAddress(a), a)
    }
    for (const a of ["127.0.0.1", "10.0.0.1", "100.64.0.1", "169.254.1.1", "192.168.0.1", "224.0.0.1", "::", "::1"]) {
      assert.isTrue(isNonPublicAddress(a), a)
    }
    for (const a of ["fc00::1", "fdff::1", "fe80::1", "ff02::1", "::ffff:7f00:1", "not an address"]) {
      assert.isTrue(isNonPublicAddress(a), a)
    }
  })

  it.prop(
    "an IPv4 address and its IPv4-mapped IPv6 forms are judged alike",
    { octets: FastCheck.tuple(FastCheck.nat(255), FastCheck.nat(255), FastCheck.nat(255), FastCheck.nat(255)) },
    ({ octets: [a, b, c, d] }) => {
      const v4 = `${a}.${b}.${c}.${d}`
      const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
      assert.strictEqual(isNonPublicAddress(`::ffff:${v4}`), isNonPublicAddress(v4))
      assert.strictEqual(isNonPublicAddress(`::ffff:${hex}`), isNonPublicAddress(v4))
    }
  )
})

describe("Transport.layerConfig", () => {
  it.scoped("a decoded `transport` section picks the relay or the folder; https settings apply to both", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const sink = yield* SmtpSink.make()
      const decode = Schema.decodeUnknownSync(TransportConfig)
      const message = outboxMessage()
      yield* send(Transport.layerConfig(decode({ type: "smtp", url: sink.url }), {}), message)
      assert.deepStrictEqual((yield* sink.take).to, ["tlsrpt@rcpt.example"])
      yield* send(Transport.layerConfig(decode({ type: "dir", dir }), {}), message)
      assert.include(yield* Effect.promise(() => readdir(dir)), dirFileNames(message).payload)
      const https = outboxMessage({ id: 9, kind: "https", destination: "https://r.example/r", payload: gzipBody })
      const disabled = failure(
        yield* Effect.exit(send(Transport.layerConfig(decode({ type: "dir", dir }), { https: false }), https))
      )
      assert.isTrue(disabled.permanent)
    })
  )

  it("TransportConfig refuses what no relay or folder can be, naming the key", () => {
    const decode = Schema.decodeUnknownEither(TransportConfig)
    for (const bad of [
      { type: "smtp", url: "http://relay.example" },
      { type: "smtp", url: "smtp://relay.example/path" },
      { type: "smtp" },
      { type: "dir", dir: "" },
      { type: "pigeon" }
    ])
      assert.isTrue(Either.isLeft(decode(bad)), JSON.stringify(bad))
    assert.deepStrictEqual(Either.getOrThrow(decode({ type: "smtp", url: "smtps://u:p@relay.example:465" })), {
      type: "smtp",
      url: "smtps://u:p@relay.example:465"
    })
  })
})
