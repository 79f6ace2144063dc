/**
 * Plain-text tables for the CLI's human output: left-aligned columns, two spaces apart. Cells hold
 * outside text (DNS, comments, SMTP replies), so their control characters are escaped.
 */
import * as Terminal from "./Terminal.js"

export const render = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>): string => {
  const cells = [header, ...rows.map((r) => r.map((c) => Terminal.escapeControls(String(c))))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)))
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}
