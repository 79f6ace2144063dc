/**
 * The `idle` bench's DNS peer, in a process of its own so its zone and query log do not count in the
 * worker's RSS: testkit's loopback DNS server with a TLSRPT record (`rua=mailto:`) for every tenth
 * of DOMAINS recipient domains (the others answer NXDOMAIN, as most domains do). Prints its
 * `127.0.0.1:port` on the first line of stdout; ends when its stdin closes (the bench ended).
 */
// the module alone: the package index also loads the seed fixtures, which the compiled build lacks
import * as DnsServer from "@tlsrpt/testkit/DnsServer"
import { Effect } from "effect"

const DOMAINS = Number(process.env.DOMAINS ?? 2_000)

const zone = Object.fromEntries(
  Array.from({ length: Math.ceil(DOMAINS / 10) }, (_, i) => [
    `_smtp._tls.d${i * 10}.example`,
    [`v=TLSRPTv1; rua=mailto:tlsrpt@d${i * 10}.example`]
  ])
)

Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const server = yield* DnsServer.make(zone)
      process.stdout.write(`${server.address}\n`)
      yield* Effect.async<void>((resume) => {
        process.stdin.on("end", () => resume(Effect.void))
        process.stdin.on("close", () => resume(Effect.void))
        process.stdin.resume()
      })
    })
  )
).then(() => process.exit(0))
