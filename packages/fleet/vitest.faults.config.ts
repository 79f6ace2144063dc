import { defineProject } from "vitest/config"

// The fault tests (three runner processes, a PostgreSQL restart, a SIGSTOP past the lease) run after
// every other project, alone: they judge leases and timeouts in seconds, and on two cores a parallel
// suite of bin tests starves the runners' heartbeats in ways production never sees.
export default defineProject({
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    name: "fleet-faults",
    include: ["test/Faults.test.ts"],
    fakeTimers: { toFake: undefined },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    sequence: { groupOrder: 1 }
  }
})
