import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, MetricBoundaries } from "effect"
import * as Metrics from "../src/Metrics.js"

describe("Metrics", () => {
  it.effect("renders counters, gauges and histograms from effect's registry in Prometheus text format", () =>
    Effect.gen(function* () {
      const counter = Metric.counter("test_worker_sent_total", { description: "Reports sent" })
      yield* Metric.increment(Metric.tagged(counter, "kind", "mailto"))
      yield* Metric.incrementBy(Metric.tagged(counter, "kind", "https"), 2)
      yield* Metric.set(Metric.gauge("test_worker.depth"), 7)
      const histogram = Metric.histogram(
        "test_worker_round_seconds",
        MetricBoundaries.fromIterable([1, 10, 100]),
        "Round duration"
      )
      yield* Metric.update(histogram, 0.5)
      yield* Metric.update(histogram, 50)
      yield* Metric.update(histogram, 500)
      const text = Metrics.render((yield* Metric.snapshot).filter((p) => p.metricKey.name.startsWith("test_worker")))
      assert.strictEqual(
        text,
        [
          "# TYPE test_worker_depth gauge",
          "test_worker_depth 7",
          "# HELP test_worker_round_seconds Round duration",
          "# TYPE test_worker_round_seconds histogram",
          'test_worker_round_seconds_bucket{le="1"} 1',
          'test_worker_round_seconds_bucket{le="10"} 1',
          'test_worker_round_seconds_bucket{le="100"} 2',
          'test_worker_round_seconds_bucket{le="+Inf"} 3',
          "test_worker_round_seconds_sum 550.5",
          "test_worker_round_seconds_count 3",
          "# HELP test_worker_sent_total Reports sent",
          "# TYPE test_worker_sent_total counter",
          'test_worker_sent_total{kind="https"} 2',
          'test_worker_sent_total{kind="mailto"} 1',
          ""
        ].join("\n")
      )
    })
  )

  it.effect("escapes label values and help text", () =>
    Effect.gen(function* () {
      const counter = Metric.counter("test_escape_total", { description: "a\\b\nc" })
      yield* Metric.increment(Metric.tagged(counter, "reason", 'say "hi"\\\n'))
      const text = Metrics.render((yield* Metric.snapshot).filter((p) => p.metricKey.name === "test_escape_total"))
      assert.include(text, "# HELP test_escape_total a\\\\b\\nc\n")
      assert.include(text, 'test_escape_total{reason="say \\"hi\\"\\\\\\n"} 1\n')
    })
  )

  it.effect("the layer adds the Node process metrics from prom-client", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics.Metrics
      const text = yield* metrics.scrape
      assert.include(text, "# TYPE process_cpu_user_seconds_total counter")
      assert.include(text, "# TYPE nodejs_heap_size_used_bytes gauge")
    }).pipe(Effect.provide(Metrics.Metrics.layer))
  )
})
