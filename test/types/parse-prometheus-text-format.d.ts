declare module 'parse-prometheus-text-format' {
  /** One sample of a counter, gauge or untyped family. */
  export interface Sample {
    labels?: Record<string, string>;
    value: string;
  }
  /** One series of a histogram family. */
  export interface HistogramSample {
    labels?: Record<string, string>;
    buckets: Record<string, string>;
    count: string;
    sum: string;
  }
  export interface MetricFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: Array<Sample | HistogramSample>;
  }
  /** Parses the Prometheus text exposition format (prom2json's output shape). */
  export default function parsePrometheusTextFormat(text: string): MetricFamily[];
}
