/** Builders of session outcomes for the tests (typed values and their JSON form). */
import { Domain } from "@tlsrpt/core"
import type * as SessionOutcome from "../src/SessionOutcome.js"

export const d = Domain.unsafeMake

export const T0 = new Date("2024-01-09T10:00:00Z")

/** An STS recipient policy + a no-policy-found host policy, successful, to `mx1.<domain>`. */
export const outcome = (
  recipient: string,
  overrides: Partial<SessionOutcome.SessionOutcome> = {}
): SessionOutcome.SessionOutcome => ({
  timestamp: T0,
  recipientDomain: d(recipient),
  mxHost: d(`mx1.${recipient}`),
  sendingIp: "192.0.2.1",
  receivingIp: "198.51.100.7",
  mxGreeting: `mx1.${recipient} ESMTP`,
  policies: [
    {
      type: "sts",
      policyLines: ["version: STSv1", "mode: enforce", `mx: *.${recipient}`, "max_age: 86400"],
      mxPatterns: [`*.${recipient}`],
      result: "success"
    },
    { type: "no-policy-found", scope: "mx-host", result: "success" }
  ],
  ...overrides
})

export const json = (recipient: string, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  timestamp: "2024-01-09T10:00:00Z",
  recipientDomain: recipient,
  mxHost: `mx1.${recipient}`,
  sendingIp: "192.0.2.1",
  receivingIp: "198.51.100.7",
  mxGreeting: `mx1.${recipient} ESMTP`,
  policies: [
    {
      type: "sts",
      policyLines: ["version: STSv1", "mode: enforce"],
      mxPatterns: [`*.${recipient}`],
      result: "success"
    },
    { type: "no-policy-found", scope: "mx-host", result: "success" }
  ],
  ...overrides
})
