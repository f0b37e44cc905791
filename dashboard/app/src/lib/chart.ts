import type uPlot from 'uplot';
import { cssVar } from './theme.svelte.ts';

let loading: Promise<typeof uPlot> | undefined;
/** uPlot on demand (its chunk is about 23 KB gzipped; the leaderboard does not need it). */
export function loadUPlot(): Promise<typeof uPlot> {
  loading ??= import('./uplot-chunk.ts').then((m) => m.default);
  return loading;
}

/** uPlot colours and axes from the page's theme tokens (charts are rebuilt when the theme changes). */
export function chartTheme() {
  return {
    text: cssVar('--muted') || '#666',
    grid: cssVar('--chart-grid') || 'rgba(0,0,0,.08)',
    border: cssVar('--border') || '#ddd',
    c1: cssVar('--chart-1') || '#c2410c',
    c2: cssVar('--chart-2') || '#1d5fd1',
    c3: cssVar('--chart-3') || '#17803d',
    bad: cssVar('--bad') || '#c22727',
    info: cssVar('--info') || '#1d5fd1',
  };
}

export function axis(t: ReturnType<typeof chartTheme>, extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  return {
    stroke: t.text,
    grid: { stroke: t.grid, width: 1 },
    ticks: { stroke: t.grid, width: 1 },
    font: '12px system-ui, sans-serif',
    labelFont: '12px system-ui, sans-serif',
    ...extra,
  };
}

/** Keeps a chart as wide as its container. */
export function fitWidth(el: HTMLElement, plot: uPlot, height: number): () => void {
  const ro = new ResizeObserver(() => {
    const w = Math.floor(el.clientWidth);
    if (w > 0 && w !== plot.width) plot.setSize({ width: w, height });
  });
  ro.observe(el);
  return () => ro.disconnect();
}
