import { defineProject } from "vitest/config"

export default defineProject({
  // vitest runs node tests in the "ssr" environment: resolve workspace packages to their TypeScript sources
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    name: "fleet",
    include: ["test/**/*.test.ts"],
    // Faults.test.ts runs in its own project, after the others (vitest.faults.config.ts).
    exclude: ["**/node_modules/**", "**/dist/**", "test/Faults.test.ts"],
    fakeTimers: { toFake: undefined },
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
