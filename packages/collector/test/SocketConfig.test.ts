import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import * as SocketConfig from "../src/SocketConfig.js"

const decode = Schema.decodeUnknownEither(SocketConfig.schema, { onExcessProperty: "error" })
const options = { dataDir: "/var/lib/tlsrpt", path: (_key: string, p: string) => NodePath.resolve("/etc/tlsrpt", p) }
const resolved = (json: unknown) => SocketConfig.resolve(Either.getOrThrow(decode(json)), options)
const firstPath = (json: unknown) => {
  const decoded = decode(json)
  assert.isTrue(Either.isLeft(decoded), "expected a decoding error")
  return ParseResult.ArrayFormatter.formatErrorSync((decoded as Either.Left<ParseResult.ParseError, unknown>).left)[0]!
}

describe("SocketConfig", () => {
  it("an empty section: the socket and the invalid-datagram folder in the data directory, mode 0660", () => {
    const c = resolved({})
    assert.deepStrictEqual(c, {
      socket: "/var/lib/tlsrpt/tlsrpt.sock",
      socketMode: 0o660,
      socketGroup: undefined,
      invalidDatagramDir: "/var/lib/tlsrpt/invalid-datagrams"
    })
    assert.deepStrictEqual(SocketConfig.resolve(undefined, options), c)
    assert.deepStrictEqual(SocketConfig.sourceConfig(c), { ...c, socket: "/var/lib/tlsrpt/tlsrpt.sock" })
  })

  it("given paths go through the caller's resolution; null turns each off", () => {
    const seen: Array<string> = []
    const c = SocketConfig.resolve(Either.getOrThrow(decode({ socket: "run/t.sock", socketGroup: "postfix" })), {
      dataDir: "/d",
      path: (key, p) => {
        seen.push(key)
        return `/base/${p}`
      }
    })
    assert.deepStrictEqual(seen, ["socket"])
    assert.strictEqual(c.socket, "/base/run/t.sock")
    assert.strictEqual(c.socketGroup, "postfix")
    const off = resolved({ socket: null, invalidDatagramDir: null })
    assert.isUndefined(off.socket)
    assert.isUndefined(off.invalidDatagramDir)
    assert.isUndefined(SocketConfig.sourceConfig(off))
  })

  it("socketMode is an octal string; a group is a name or a gid; unknown keys are refused", () => {
    assert.strictEqual(resolved({ socketMode: "0620" }).socketMode, 0o620)
    assert.strictEqual(resolved({ socketMode: "600" }).socketMode, 0o600)
    const mode = firstPath({ socketMode: "rw-rw----" })
    assert.deepStrictEqual(mode.path, ["socketMode"])
    assert.match(mode.message, /expected an octal file mode such as "0660"/)
    assert.deepStrictEqual(firstPath({ socketGroup: -1 }).path, ["socketGroup"])
    assert.deepStrictEqual(firstPath({ socket: "" }).path, ["socket"])
    assert.deepStrictEqual(firstPath({ sock: "x" }).path, ["sock"])
  })
})
