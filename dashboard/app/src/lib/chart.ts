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

/** A vertical marker on a time chart: `at` in epoch ms. */
export interface ChartMarker {
  at: number;
  /** A few characters drawn at the top of the line. */
  tag: string;
  colour: string;
}

/**
 * Draws `markers()` as dashed vertical lines over the plot area, each tagged at the top; markers
 * outside the x range are skipped. Read on every draw, so new markers show at the next redraw.
 */
export function markersPlugin(markers: () => readonly ChartMarker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u: uPlot) => {
          const { ctx, bbox } = u;
          const dpr = window.devicePixelRatio || 1;
          ctx.save();
          ctx.font = `${Math.round(11 * dpr)}px system-ui, sans-serif`;
          ctx.lineWidth = Math.max(1, dpr);
          // Tags of markers close together go on the next row down instead of over each other.
          const rowEnds: number[] = [];
          for (const m of [...markers()].sort((a, b) => a.at - b.at)) {
            const x = Math.round(u.valToPos(m.at / 1000, 'x', true));
            if (!Number.isFinite(x) || x < bbox.left || x > bbox.left + bbox.width) continue;
            ctx.strokeStyle = m.colour;
            ctx.fillStyle = m.colour;
            ctx.setLineDash([4 * dpr, 3 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
            ctx.setLineDash([]);
            const width = ctx.measureText(m.tag).width + 6 * dpr;
            let row = rowEnds.findIndex((end) => end < x);
            if (row < 0) row = Math.min(rowEnds.push(0) - 1, 3);
            rowEnds[row] = x + width;
            // Near the right edge the tag goes on the line's left, inside the plot.
            const left = x + width > bbox.left + bbox.width;
            ctx.textAlign = left ? 'right' : 'left';
            ctx.fillText(m.tag, left ? x - 3 * dpr : x + 3 * dpr, bbox.top + (11 + 13 * row) * dpr);
          }
          ctx.restore();
        },
      ],
    },
  };
}
