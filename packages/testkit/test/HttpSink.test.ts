import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as HttpSink from "../src/HttpSink.js"

const post = (url: string, body: Uint8Array, signal?: AbortSignal) =>
  Effect.promise(async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/tlsrpt+gzip" },
      body,
      ...(signal ? { signal } : {})
    })
    await res.arrayBuffer()
    return res.status
  })

describe("HttpSink", () => {
  it.scoped("records method, path, headers and body, answering from the script then the default", () =>
    Effect.gen(function* () {
      const sink = yield* HttpSink.make({ script: [500, 201] })
      const body = new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3])
      const statuses = [
        yield* post(`${sink.url}/tlsrpt?x=1`, body),
        yield* post(`${sink.url}/tlsrpt`, body),
        yield* post(`${sink.url}/tlsrpt`, body)
      ]
      assert.deepStrictEqual(statuses, [500, 201, 200])
      const first = yield* sink.take
      assert.strictEqual(first.method, "POST")
      assert.strictEqual(first.path, "/tlsrpt?x=1")
      assert.strictEqual(first.headers["content-type"], "application/tlsrpt+gzip")
      assert.deepStrictEqual(first.body, body)
      assert.strictEqual(first.reply, 500)
      assert.deepStrictEqual(
        (yield* sink.requests).map((r) => r.reply),
        [500, 201, 200]
      )
    })
  )

  it.scoped("a hang step never answers (the client times out) and setScript replaces the script", () =>
    Effect.gen(function* () {
      const sink = yield* HttpSink.make({ defaultStatus: 204 })
      yield* sink.setScript(["hang"])
      const timedOut = yield* Effect.tryPromise(() =>
        fetch(sink.url, { method: "POST", body: "x", signal: AbortSignal.timeout(100) })
      ).pipe(Effect.either)
      assert.isTrue(timedOut._tag === "Left")
      assert.strictEqual(yield* post(sink.url, new Uint8Array([1])), 204)
    })
  )
})
