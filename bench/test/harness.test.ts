import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { figureTable, formatTable, ratioTable } from '../src/report.js';
import { parseSettings } from '../src/settings.js';
import { formatNumber, formatRatio, median, mergeSorted, percentile, summarize } from '../src/stats.js';

describe('bench harness: pure parts', { timeout: 10_000 }, () => {
  it('takes nearest-rank percentiles of sorted samples', () => {
    const samples = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    assert.equal(percentile(samples, 50), 500);
    assert.equal(percentile(samples, 99), 990);
    assert.equal(percentile(samples, 99.9), 999);
    assert.equal(percentile(samples, 100), 1000);
    assert.equal(percentile([7], 99), 7);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it('merges the samples of several generators before taking percentiles', () => {
    const merged = mergeSorted([Float64Array.from([5, 1, 3]), [4, 2]]);
    assert.deepEqual([...merged], [1, 2, 3, 4, 5]);
    assert.deepEqual(summarize(merged), { count: 5, p50: 3, p99: 5, p999: 5 });
  });

  it('keeps the median over rounds and ignores missing figures', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([Number.NaN, 8]), 8);
    assert.ok(Number.isNaN(median([])));
  });

  it('formats figures with three significant digits and ratios with two decimals', () => {
    assert.equal(formatNumber(12_345.6), '12,346');
    assert.equal(formatNumber(123.45), '123');
    assert.equal(formatNumber(1.2345), '1.23');
    assert.equal(formatNumber(0.012345), '0.012');
    assert.equal(formatNumber(Number.NaN), '-');
    assert.equal(formatRatio(30, 20), '1.50x');
    assert.equal(formatRatio(30, Number.NaN), '-');
  });

  it('pads markdown tables: names left, figures right', () => {
    const table = formatTable(
      ['target', 'msgs/s'],
      [
        ['nginx', '1,000'],
        ['wslb', '20'],
      ],
    );
    assert.equal(
      table,
      ['| target | msgs/s |', '|:-------|-------:|', '| nginx  |  1,000 |', '| wslb   |     20 |'].join('\n'),
    );
  });

  it('shows rows without figures as n/a with their reason, and ratios to a base row', () => {
    const columns = [{ title: 'rate', value: (f: Record<string, number>) => f.rate }];
    const rows = [
      { label: 'nginx', figures: { rate: 200 } },
      { label: 'wslb', figures: { rate: 300 } },
      { label: 'plugins', figures: undefined, note: 'n/a (not installed: health-check)' },
    ];
    const figures = figureTable(columns, rows);
    assert.ok(figures.includes('| plugins |  n/a |'), figures);
    assert.match(figures, /plugins: n\/a \(not installed: health-check\)$/);
    const ratios = ratioTable(columns, rows, rows[0]);
    assert.ok(ratios.includes('| wslb    | 1.50x |'), ratios);
    assert.ok(ratios.includes('| nginx   | 1.00x |'), ratios);
  });

  it('reads --quick as one short round with fewer idle tunnels', () => {
    const quick = parseSettings(['--quick']);
    assert.equal(quick.rounds, 1);
    assert.equal(quick.durationMs, 1000);
    assert.equal(quick.tunnels, 1000);
    assert.ok(!quick.targets.includes('node-floor'), 'quick runs without the Node floor row');
    const full = parseSettings([]);
    assert.equal(full.rounds, 3);
    assert.equal(full.tunnels, 9000);
    assert.ok(full.targets.includes('node-floor') && full.targets.includes('haproxy'));
    assert.deepEqual(parseSettings(['--targets', 'nginx,wslb']).targets, ['nginx', 'wslb']);
    assert.throws(() => parseSettings(['--targets', 'envoy']), /unknown target "envoy"/);
  });
});
