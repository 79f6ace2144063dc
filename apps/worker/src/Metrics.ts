/**
 * `/metrics` in the Prometheus text exposition format (version 0.0.4).
 *
 * The packages record effect `Metric`s (counters, gauges, timers) in effect's global registry. A small
 * bridge renders `Metric.snapshot` directly: effect's histograms already hold cumulative buckets, sum
 * and count, which map one-to-one onto Prometheus series, whereas prom-client's own metric classes
 * would have to re-observe values they never saw. prom-client (already pinned) contributes the
 * standard Node process metrics (`process_*`, `nodejs_*`) from its default collectors. The
 * OpenTelemetry Prometheus exporter is not used: its current release needs Node 22.
 */
import { Context, Effect, Layer, Metric, type MetricPair, MetricState, Option } from "effect"
import * as PromClient from "prom-client"

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/** Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
export const metricName = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(s) ? `_${s}` : s
}

const labelName = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[0-9]/.test(s) ? `_${s}` : s
}

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')
const escapeHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const formatValue = (v: number | bigint): string => {
  if (typeof v === "bigint") return v.toString()
  if (Number.isNaN(v)) return "NaN"
  if (v === Number.POSITIVE_INFINITY) return "+Inf"
  if (v === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(v)
}

const formatLabels = (labels: ReadonlyArray<readonly [string, string]>): string =>
  labels.length === 0 ? "" : `{${labels.map(([k, v]) => `${labelName(k)}="${escapeLabel(v)}"`).join(",")}}`

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  help: string
  /** One entry per series (label set): its lines in exposition order (buckets ascending). */
  readonly series: Array<{ readonly key: string; readonly lines: ReadonlyArray<string> }>
}

/** Renders effect metric pairs; series of one name are grouped under one `# HELP` / `# TYPE`. */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: string): Family => {
    let f = families.get(name)
    if (f === undefined) {
      f = { type, help, series: [] }
      families.set(name, f)
    } else if (f.help === "" && help !== "") f.help = help
    return f
  }
  for (const pair of pairs) {
    const metricKey = pair.metricKey
    const name = metricName(metricKey.name)
    const help = Option.getOrElse(metricKey.description, () => "")
    const tags = metricKey.tags.map((t) => [t.key, t.value] as const)
    const state = pair.metricState
    const key = formatLabels(tags)
    if (MetricState.isCounterState(state)) {
      family(name, "counter", help).series.push({ key, lines: [`${name}${key} ${formatValue(state.count)}`] })
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", help).series.push({ key, lines: [`${name}${key} ${formatValue(state.value)}`] })
    } else if (MetricState.isHistogramState(state)) {
      const lines: Array<string> = []
      let infinite = false
      for (const [bound, cumulative] of state.buckets) {
        if (bound === Number.POSITIVE_INFINITY) infinite = true
        lines.push(`${name}_bucket${formatLabels([...tags, ["le", formatValue(bound)]])} ${cumulative}`)
      }
      if (!infinite) lines.push(`${name}_bucket${formatLabels([...tags, ["le", "+Inf"]])} ${state.count}`)
      lines.push(`${name}_sum${key} ${formatValue(state.sum)}`)
      lines.push(`${name}_count${key} ${state.count}`)
      family(name, "histogram", help).series.push({ key, lines })
    } else if (MetricState.isSummaryState(state)) {
      const lines = state.quantiles.map(
        ([q, v]) =>
          `${name}${formatLabels([...tags, ["quantile", String(q)]])} ${formatValue(Option.getOrElse(v, () => Number.NaN))}`
      )
      lines.push(`${name}_sum${key} ${formatValue(state.sum)}`)
      lines.push(`${name}_count${key} ${state.count}`)
      family(name, "summary", help).series.push({ key, lines })
    } else if (MetricState.isFrequencyState(state)) {
      // A frequency counts occurrences of string values: one counter series per value.
      const f = family(name, "counter", help)
      for (const [value, count] of state.occurrences) {
        const labels = formatLabels([...tags, ["value", value]])
        f.series.push({ key: labels, lines: [`${name}${labels} ${count}`] })
      }
    }
  }
  const out: Array<string> = []
  for (const [name, f] of [...families.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (f.help !== "") out.push(`# HELP ${name} ${escapeHelp(f.help)}`)
    out.push(`# TYPE ${name} ${f.type}`)
    for (const series of f.series.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)))
      out.push(...series.lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

export class Metrics extends Context.Tag("@tlsrpt/worker/Metrics")<
  Metrics,
  {
    /** The whole `/metrics` body: effect's metrics, then the Node process metrics. */
    readonly scrape: Effect.Effect<string>
  }
>() {
  /** With prom-client's default Node process collectors in a private registry. */
  static readonly layer: Layer.Layer<Metrics> = Layer.sync(Metrics, () => {
    const registry = new PromClient.Registry()
    PromClient.collectDefaultMetrics({ register: registry })
    return {
      scrape: Effect.gen(function* () {
        const ours = render(yield* Metric.snapshot)
        const node = yield* Effect.promise(() => registry.metrics()).pipe(
          Effect.catchAllDefect(() => Effect.succeed(""))
        )
        return `${ours}${node}`
      })
    }
  })

  /** Effect metrics only (tests). */
  static readonly layerEffectOnly: Layer.Layer<Metrics> = Layer.succeed(Metrics, {
    scrape: Effect.map(Metric.snapshot, render)
  })
}
