import { defineProject } from "vitest/config"

export default defineProject({
  // vitest runs node tests in the "ssr" environment: resolve workspace packages to their TypeScript sources
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    name: "fleet",
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    fakeTimers: { toFake: undefined },
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
