/** fast-check arbitraries of session outcomes in their JSON form. */
import { PolicyResult } from "@tlsrpt/core"
import { FastCheck as fc } from "effect"

const label = fc.oneof(
  fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9]{0,8}$/),
  fc.constantFrom("bücher", "☺", "münchen", "xn--74h", "日本", "ÉCOLE")
)

/** Any domain spelling: mixed case, IDNA U-labels and A-labels, an optional trailing dot. */
export const anyDomain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom("com", "example", "org", "рф"), fc.boolean())
  .map(([labels, tld, dot]) => `${labels.join(".")}.${tld}${dot ? "." : ""}`)

/** Text without CR or LF. */
export const anyText = fc.string({ maxLength: 20 }).filter((s) => !/[\r\n]/.test(s))

const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

export interface Pools {
  readonly domain: fc.Arbitrary<string>
  readonly text: fc.Arbitrary<string>
  readonly time: fc.Arbitrary<number>
  readonly ip: fc.Arbitrary<string>
  readonly ipLiterals: boolean
}

/** JSON outcomes; small pools (domains, texts, times) make keys, policies and details collide. */
export const makeJsonOutcome = (pools: Pools) => {
  const { domain, text } = pools
  const detail = fc.record(
    {
      resultType: fc.constantFrom(...PolicyResult.ResultType.literals),
      reasonCode: text,
      additionalInformation: text,
      failedSessionCount: fc.nat(5)
    },
    { requiredKeys: ["resultType"] }
  )
  const common = {
    result: fc.constantFrom("success", "failure"),
    failureDetails: fc.array(detail, { maxLength: 3 })
  }
  const recipientPolicy = fc.oneof(
    fc.record(
      {
        type: fc.constant("sts"),
        policyLines: fc.array(text, { maxLength: 3 }),
        mxPatterns: fc.array(text, { maxLength: 2 }),
        ...common
      },
      { requiredKeys: ["type", "result"] }
    ),
    fc.record(
      { type: fc.constant("no-policy-found"), scope: fc.constant("recipient-domain"), domain, ...common },
      { requiredKeys: ["type", "scope", "result"] }
    )
  )
  const hostPolicy = fc.oneof(
    fc.record(
      {
        type: fc.constant("tlsa"),
        records: fc.array(fc.constantFrom("3 1 1 aa", "2 0 1 bb", "3 1 2 "), { maxLength: 3 }),
        baseDomain: domain,
        ...common
      },
      { requiredKeys: ["type", "records", "baseDomain", "result"] }
    ),
    fc.record(
      { type: fc.constant("no-policy-found"), scope: fc.constant("mx-host"), domain, ...common },
      { requiredKeys: ["type", "scope", "result"] }
    )
  )
  const policies = fc
    .tuple(fc.option(recipientPolicy, { nil: undefined }), fc.option(hostPolicy, { nil: undefined }), fc.boolean())
    .map(([r, h, hostFirst]) => (hostFirst ? [h, r] : [r, h]).filter((p) => p !== undefined))
    .filter((ps) => ps.length > 0)
  return fc.record(
    {
      timestamp: fc.oneof(
        pools.time,
        pools.time.map((t) => new Date(t).toISOString())
      ),
      recipientDomain: pools.ipLiterals
        ? fc.oneof({ weight: 9, arbitrary: domain }, { weight: 1, arbitrary: fc.ipV4().map((ip) => `[${ip}]`) })
        : domain,
      mxHost: domain,
      sendingIp: pools.ip,
      receivingIp: pools.ip,
      mxGreeting: text,
      isTlsReport: fc.boolean(),
      isDmarcReport: fc.boolean(),
      policies
    },
    { requiredKeys: ["timestamp", "recipientDomain", "mxHost", "policies"] }
  )
}

export const jsonOutcome = makeJsonOutcome({
  domain: anyDomain,
  text: anyText,
  time: fc.integer({ min: 0, max: MAX_TIME }),
  ip: fc.oneof(fc.ipV4(), fc.ipV6()),
  ipLiterals: true
})

/** Few domains, texts and days: many outcomes share keys, policies and failure details. */
export const collidingJsonOutcome = makeJsonOutcome({
  domain: fc.constantFrom("a.example", "b.example", "Bücher.example", "mx.a.example"),
  text: fc.constantFrom("", "x", "y"),
  time: fc.constantFrom(Date.UTC(2024, 0, 9, 10), Date.UTC(2024, 0, 9, 23, 59), Date.UTC(2024, 0, 10, 0, 1)),
  ip: fc.constantFrom("192.0.2.1", "2001:db8::1"),
  ipLiterals: false
})
