// Sends metrics to alertd through the OpenTelemetry JavaScript SDK's own
// OTLP/HTTP exporter, as an instrumented application would:
//   node send.js URL HOST PROTOCOL(json|protobuf) SECONDS
// Every second for SECONDS seconds: the gauge `queue.depth` at 42 and the
// counter `jobs.done` up by 5, with the resource attribute host.name = HOST.
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [url, host, protocol, seconds] = process.argv.slice(2);
const { OTLPMetricExporter } = protocol === 'protobuf'
  ? require('@opentelemetry/exporter-metrics-otlp-proto')
  : require('@opentelemetry/exporter-metrics-otlp-http');

const exporter = new OTLPMetricExporter({ url });
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1000 });
const provider = new MeterProvider({
  resource: resourceFromAttributes({ 'host.name': host, 'service.name': 'otlp-client-test' }),
  readers: [reader],
});
const meter = provider.getMeter('alertd-test');
const done = meter.createCounter('jobs.done');
let depth = 42;
meter.createObservableGauge('queue.depth').addCallback((result) => result.observe(depth));

let left = Number(seconds);
const timer = setInterval(async () => {
  done.add(5);
  left -= 1;
  if (left <= 0) {
    clearInterval(timer);
    await provider.forceFlush();
    await provider.shutdown();
  }
}, 1000);
