/**
 * A writer thread that dies (exit code 3) on its first batch while `marker` does not exist, creating
 * it; with `marker: "always"` on every batch. Otherwise it is the real WriterThreadMain.
 */
import { existsSync, writeFileSync } from "node:fs"
import { parentPort, workerData } from "node:worker_threads"

const { marker } = workerData as { readonly marker: string }

if (marker === "always" || !existsSync(marker)) {
  parentPort?.once("message", () => {
    if (marker !== "always") writeFileSync(marker, "")
    process.exit(3)
  })
} else await import("../src/WriterThreadMain.js")
