/**
 * A tiny dependency-free SVG renderer for benchmark plots: grouped bars (latency percentiles) and
 * lines (throughput over time). Output is a standalone SVG that GitHub renders inline.
 */
import type { ScenarioResult, Series } from './types';

const W = 720;
const H = 360;
const M = { top: 40, right: 20, bottom: 70, left: 70 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A "nice" axis maximum and tick step for values up to `max`. */
export function niceScale(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step) * step, step };
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '') || '0');

function frame(title: string, yLabel: string, yMax: number, step: number): string[] {
  const ih = H - M.top - M.bottom;
  const iw = W - M.left - M.right;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text transform="translate(16 ${M.top + ih / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (let v = 0; v <= yMax + step / 2; v += step) {
    const y = M.top + ih - (v / yMax) * ih;
    out.push(`<line x1="${M.left}" x2="${M.left + iw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ih}" stroke="#333"/>`);
  out.push(`<line x1="${M.left}" x2="${M.left + iw}" y1="${M.top + ih}" y2="${M.top + ih}" stroke="#333"/>`);
  return out;
}

function legend(names: string[], y: number): string[] {
  const out: string[] = [];
  let x = M.left;
  names.forEach((n, i) => {
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${x + 16}" y="${y}">${esc(n)}</text>`);
    x += 24 + n.length * 7;
  });
  return out;
}

/** Grouped bars: one group per category, one bar per key (e.g. p50/p95/p99/max). */
export function barChart(opts: { title: string; yLabel: string; groups: Array<{ label: string; values: Record<string, number> }>; keys: string[] }): string {
  const all = opts.groups.flatMap((g) => opts.keys.map((k) => g.values[k] ?? 0));
  const { max, step } = niceScale(Math.max(0, ...all));
  const out = frame(opts.title, opts.yLabel, max, step);
  const ih = H - M.top - M.bottom;
  const iw = W - M.left - M.right;
  const gw = iw / Math.max(1, opts.groups.length);
  const bw = Math.min(40, (gw * 0.8) / opts.keys.length);
  opts.groups.forEach((g, gi) => {
    const x0 = M.left + gi * gw + (gw - bw * opts.keys.length) / 2;
    opts.keys.forEach((k, ki) => {
      const v = g.values[k] ?? 0;
      const h = (v / max) * ih;
      const x = x0 + ki * bw;
      out.push(`<rect x="${x.toFixed(1)}" y="${(M.top + ih - h).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[ki % COLORS.length]}"><title>${esc(`${g.label} ${k}: ${fmt(v)}`)}</title></rect>`);
      out.push(`<text x="${(x + bw / 2 - 1).toFixed(1)}" y="${(M.top + ih - h - 3).toFixed(1)}" text-anchor="middle" font-size="9">${fmt(v)}</text>`);
    });
    out.push(`<text x="${(M.left + gi * gw + gw / 2).toFixed(1)}" y="${M.top + ih + 16}" text-anchor="middle">${esc(g.label)}</text>`);
  });
  out.push(...legend(opts.keys, H - 14), '</svg>');
  return out.join('\n');
}

/** Lines over time (x = seconds since start); one line per series, same unit expected. */
export function lineChart(opts: { title: string; yLabel: string; series: Series[] }): string {
  const pts = opts.series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...pts.map((p) => p[0]));
  const { max, step } = niceScale(Math.max(0, ...pts.map((p) => p[1])));
  const out = frame(opts.title, opts.yLabel, max, step);
  const ih = H - M.top - M.bottom;
  const iw = W - M.left - M.right;
  const xs = niceScale(xMax, 8);
  for (let v = 0; v <= xs.max + xs.step / 2; v += xs.step) {
    const x = M.left + (v / xs.max) * iw;
    out.push(`<text x="${x.toFixed(1)}" y="${M.top + ih + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<text x="${M.left + iw / 2}" y="${M.top + ih + 34}" text-anchor="middle">seconds since start</text>`);
  opts.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points
      .map(([x, y], j) => `${j ? 'L' : 'M'}${(M.left + (x / xs.max) * iw).toFixed(1)},${(M.top + ih - (y / max) * ih).toFixed(1)}`)
      .join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2"/>`);
  });
  out.push(...legend(opts.series.map((s) => `${s.name} (${s.unit})`), H - 14), '</svg>');
  return out.join('\n');
}

/** The plots of one scenario: latency percentiles of every figure that has them, and each unit's series over time. */
export function scenarioPlots(r: ScenarioResult): Array<{ file: string; svg: string }> {
  const out: Array<{ file: string; svg: string }> = [];
  for (const c of r.charts ?? []) out.push({ file: c.file, svg: barChart(c) });
  const withLatency = r.charts?.length ? [] : [...r.figures, ...(r.baseline?.figures ?? []).map((f) => ({ ...f, name: `baseline: ${f.name}` }))].filter((f) => f.latency);
  if (withLatency.length) {
    out.push({
      file: `${r.scenario}-latency.svg`,
      svg: barChart({
        title: `${r.scenario}: latency percentiles (ms)`,
        yLabel: 'ms',
        keys: ['p50', 'p95', 'p99', 'max'],
        groups: withLatency.map((f) => ({ label: f.name, values: { ...f.latency! } as unknown as Record<string, number> })),
      }),
    });
  }
  const byUnit = new Map<string, Series[]>();
  for (const s of r.series ?? []) byUnit.set(s.unit, [...(byUnit.get(s.unit) ?? []), s]);
  for (const [unit, series] of byUnit) {
    const slug = unit.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase() || 'series';
    out.push({ file: `${r.scenario}-${slug}.svg`, svg: lineChart({ title: `${r.scenario}: ${unit} over time`, yLabel: unit, series }) });
  }
  return out;
}
