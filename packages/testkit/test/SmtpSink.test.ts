import { connect, type Socket } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as SmtpSink from "../src/SmtpSink.js"

/** A bare SMTP client over node:net: sends each line after the previous reply, returns the reply codes. */
const dialog = (port: number, lines: ReadonlyArray<string>) =>
  Effect.tryPromise(
    () =>
      new Promise<{ readonly codes: ReadonlyArray<number>; readonly ehlo: string }>((resolve, reject) => {
        const socket: Socket = connect(port, "127.0.0.1")
        const codes: Array<number> = []
        let buffer = ""
        let reply = ""
        let ehlo = ""
        let next = 0
        socket.setEncoding("utf8")
        socket.on("error", reject)
        socket.on("data", (chunk: string) => {
          buffer += chunk
          for (let nl = buffer.indexOf("\r\n"); nl >= 0; nl = buffer.indexOf("\r\n")) {
            const line = buffer.slice(0, nl)
            buffer = buffer.slice(nl + 2)
            reply += `${line}\n`
            if (line[3] === "-") continue // multi-line reply goes on
            codes.push(Number(line.slice(0, 3)))
            if (reply.includes("PIPELINING") || reply.includes("STARTTLS")) ehlo = reply
            reply = ""
            if (next < lines.length) {
              socket.write(`${lines[next++]}\r\n`)
            } else {
              socket.end()
              resolve({ codes, ehlo })
            }
          }
        })
      })
  )

const transaction = (from: string, to: string, body: string) => [
  `MAIL FROM:<${from}>`,
  `RCPT TO:<${to}>`,
  "DATA",
  `${body}\r\n.`
]

describe("SmtpSink", () => {
  it.scoped("records an accepted message with its envelope and bytes", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make()
      const body = "Subject: hi\r\n\r\nhello"
      const { codes, ehlo } = yield* dialog(sink.port, [
        "EHLO client.example",
        ...transaction("a@x.example", "b@y.example", body),
        "QUIT"
      ])
      assert.deepStrictEqual(codes, [220, 250, 250, 250, 354, 250, 221])
      assert.notInclude(ehlo, "STARTTLS")
      const mail = yield* sink.take
      assert.strictEqual(mail.from, "a@x.example")
      assert.deepStrictEqual(mail.to, ["b@y.example"])
      assert.strictEqual(Buffer.from(mail.raw).toString(), `${body}\r\n`)
      assert.strictEqual(mail.clientHostname, "client.example")
      assert.isFalse(mail.secure)
      assert.strictEqual(sink.url, `smtp://127.0.0.1:${sink.port}`)
    })
  )

  it.scoped("answers transactions from the script, at the scripted stage, then accepts", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: [451, { code: 550, at: "rcpt" }, { code: 452, at: "mail" }] })
      const { codes } = yield* dialog(sink.port, [
        "EHLO c",
        ...transaction("a@x", "b@y", "one"),
        "RSET",
        ...transaction("a@x", "b@y", "two").slice(0, 2),
        "RSET",
        "MAIL FROM:<a@x>",
        "RSET",
        ...transaction("a@x", "b@y", "four"),
        "QUIT"
      ])
      assert.deepStrictEqual(
        codes,
        [220, 250, 250, 250, 354, 451, 250, 250, 550, 250, 452, 250, 250, 250, 354, 250, 221]
      )
      const received = yield* sink.received
      assert.deepStrictEqual(
        received.map((m) => Buffer.from(m.raw).toString()),
        ["four\r\n"]
      )
      assert.deepStrictEqual(
        (yield* sink.transactions).map((t) => t.code),
        [451, 550, 452, 250]
      )
    })
  )

  it.scoped("setScript replaces the remaining steps", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ script: [421] })
      yield* sink.setScript([554])
      const { codes } = yield* dialog(sink.port, ["EHLO c", ...transaction("a@x", "b@y", "x"), "QUIT"])
      assert.strictEqual(codes[5], 554)
      assert.lengthOf(yield* sink.received, 0)
    })
  )

  it.scoped("offers STARTTLS only when asked", () =>
    Effect.gen(function* () {
      const sink = yield* SmtpSink.make({ starttls: true })
      const { ehlo } = yield* dialog(sink.port, ["EHLO c", "QUIT"])
      assert.include(ehlo, "STARTTLS")
    })
  )

  it.scoped("closes with the scope: the port refuses afterwards", () =>
    Effect.gen(function* () {
      const port = yield* Effect.scoped(Effect.map(SmtpSink.make(), (s) => s.port))
      const result = yield* Effect.either(dialog(port, ["QUIT"]))
      assert.isTrue(result._tag === "Left")
    })
  )
})
