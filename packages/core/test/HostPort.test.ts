import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as HostPort from "../src/HostPort.js"

const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain())
const port = fc.integer({ min: 0, max: 65535 })

describe("HostPort", () => {
  it("v4, v6 in brackets, names; a bare host only with a default port; ports up to 65535", () => {
    assert.deepStrictEqual(HostPort.parse("127.0.0.1:8470"), Either.right({ host: "127.0.0.1", port: 8470 }))
    assert.deepStrictEqual(HostPort.parse("[::1]:53"), Either.right({ host: "::1", port: 53 }))
    assert.deepStrictEqual(HostPort.parse("::1", 53), Either.right({ host: "::1", port: 53 }))
    assert.deepStrictEqual(HostPort.parse("[::1]", 53), Either.right({ host: "::1", port: 53 }))
    assert.isTrue(Either.isLeft(HostPort.parse("9.9.9.9")))
    assert.isTrue(Either.isLeft(HostPort.parse("9.9.9.9:65536")))
    assert.isTrue(Either.isLeft(HostPort.parse("host:port")))
  })

  it.prop("format then parse (and the Schema both ways) give the address back", [host, port], ([h, p]) => {
    const hp = { host: h, port: p }
    assert.deepStrictEqual(HostPort.parse(HostPort.format(hp)), Either.right(hp))
    const schema = HostPort.schema()
    assert.deepStrictEqual(Schema.decodeSync(schema)(Schema.encodeSync(schema)(hp)), hp)
  })
})
