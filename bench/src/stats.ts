/** Pure helpers of the harness: percentiles, medians and number formatting. */

/** Nearest-rank percentile (p in 0..100) of samples sorted ascending; NaN when there are none. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (p <= 0) return sorted[0]!;
  if (p >= 100) return sorted[sorted.length - 1]!;
  // p * n / 100 (not p / 100 * n): 99.9 / 100 * 1000 rounds up to 999.0000000000001.
  const rank = Math.ceil((p * sorted.length) / 100);
  return sorted[Math.max(0, rank - 1)]!;
}

/** Sorts a copy of the samples (numerically) and returns it. */
export function sortedCopy(samples: ArrayLike<number>): Float64Array {
  const copy = Float64Array.from(samples as ArrayLike<number>);
  copy.sort();
  return copy;
}

/** Joins sample arrays from several generator processes into one sorted array. */
export function mergeSorted(parts: ReadonlyArray<ArrayLike<number>>): Float64Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const all = new Float64Array(length);
  let offset = 0;
  for (const p of parts) {
    all.set(p as ArrayLike<number>, offset);
    offset += p.length;
  }
  all.sort();
  return all;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
}

export function summarize(sorted: ArrayLike<number>): LatencySummary {
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
  };
}

/** Median of the finite values (NaN when none): the figure kept over several rounds. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/** A number with about three significant digits, thousands separated; "-" for NaN. */
export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return '-';
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 10 ** digits) return Math.round(value).toLocaleString('en-US');
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)));
  return value.toFixed(Math.min(decimals, 3));
}

/** A ratio as "1.23x"; "-" when either side is missing. */
export function formatRatio(value: number, base: number): string {
  if (!Number.isFinite(value) || !Number.isFinite(base) || base === 0) return '-';
  return `${(value / base).toFixed(2)}x`;
}
