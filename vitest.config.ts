import { defineConfig } from "vitest/config"

export default defineConfig({
  test: { projects: ["packages/*", "packages/fleet/vitest.faults.config.ts", "apps/*", "examples/*", "test"] }
})
