import { formatNumber, formatRatio } from './stats.js';

/**
 * A markdown table whose columns are padded, so it reads the same in a terminal. The first
 * `textColumns` columns (names, notes) are left-aligned, the figures after them right-aligned.
 */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  textColumns = 1,
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (i < textColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < textColumns ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(headers), rule, ...rows.map((r) => line(headers.map((_, i) => r[i] ?? '')))].join('\n');
}

/** One figure of a target in a scenario, or why there is none. */
export type Cell = number | undefined;

export interface Column {
  title: string;
  /** Reads the figure from a row's result. */
  value: (row: RowFigures) => Cell;
  /** Lower is better (CPU, latency, memory): ratios still read value/base. */
  lowerIsBetter?: boolean;
}

export type RowFigures = Record<string, number>;

export interface TableRow {
  label: string;
  figures: RowFigures | undefined;
  /** Shown across the row when there are no figures ("n/a (not installed)"). */
  note?: string;
}

/** Rows without figures show "n/a" in each cell and their reason under the table. */
function withNotes(table: string, rows: readonly TableRow[]): string {
  const notes = rows.filter((r) => !r.figures).map((r) => `${r.label}: ${r.note ?? 'n/a'}`);
  return notes.length > 0 ? `${table}\n\n${notes.join('\n')}` : table;
}

export function figureTable(columns: readonly Column[], rows: readonly TableRow[]): string {
  const table = formatTable(
    ['target', ...columns.map((c) => c.title)],
    rows.map((r) => [
      r.label,
      ...columns.map((c) => (r.figures ? formatNumber(c.value(r.figures) ?? Number.NaN) : 'n/a')),
    ]),
  );
  return withNotes(table, rows);
}

/** Each figure divided by the base row's (direct or nginx) from the same run. */
export function ratioTable(
  columns: readonly Column[],
  rows: readonly TableRow[],
  base: TableRow | undefined,
) {
  const baseValue = (c: Column): number =>
    base?.figures ? (c.value(base.figures) ?? Number.NaN) : Number.NaN;
  const table = formatTable(
    ['target', ...columns.map((c) => c.title)],
    rows.map((r) => [
      r.label,
      ...columns.map((c) =>
        r.figures ? formatRatio(c.value(r.figures) ?? Number.NaN, baseValue(c)) : 'n/a',
      ),
    ]),
  );
  return withNotes(table, rows);
}
