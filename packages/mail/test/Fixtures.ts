/** Shared test data for the mail tests (not a test file itself). */
import { createServer } from "node:net"
import { Day } from "@tlsrpt/core"
import type { NewOutboxMessage, OutboxMessage } from "@tlsrpt/store"
import { Effect } from "effect"

export const RAW = [
  "From: <postmaster@sender.example>",
  "To: <tlsrpt@rcpt.example>",
  "Subject: Report Domain: rcpt.example Submitter: sender.example Report-ID: <20240109.rcpt.example@sender.example>",
  "TLS-Report-Domain: rcpt.example",
  "",
  "a line",
  ".a line starting with a dot",
  ""
].join("\r\n")

/** A report mail for the outbox, as the reporter enqueues it. */
export const newMessage = (overrides: Partial<NewOutboxMessage> = {}): NewOutboxMessage => ({
  kind: "mailto",
  destination: "tlsrpt@rcpt.example",
  envelopeFrom: "postmaster@sender.example",
  payload: new TextEncoder().encode(RAW),
  reportId: "20240109.rcpt.example@sender.example",
  policyDomain: "rcpt.example",
  day: Day.fromMillis(Date.UTC(2024, 0, 9)),
  ...overrides
})

/** The same as a stored outbox message. */
export const outboxMessage = (overrides: Partial<OutboxMessage> = {}): OutboxMessage => ({
  ...newMessage(),
  id: 7,
  status: "queued",
  attempts: 0,
  nextAttemptAt: new Date(0),
  lastError: undefined,
  created: new Date(0),
  updated: new Date(0),
  ...overrides
})

export const gzipBody = new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02])

/** A loopback port nobody listens on. */
export const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const s = createServer()
      s.listen(0, "127.0.0.1", () => {
        const address = s.address()
        s.close(() => resolve(typeof address === "object" && address !== null ? address.port : 1))
      })
    })
)
