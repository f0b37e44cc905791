/**
 * A dashboard-like /v1/live client for latency benches: subscribes to one topic and notes when each
 * higher 24-hour click count of the probe entity was first seen, so a bench can match every click it
 * posted to the frame that carried it.
 */
import { WebSocket } from 'ws';

type EntityWire = { id: string; w: Record<string, number[]> };
type LiveMessage = { entities?: EntityWire[] } | Array<{ entities?: EntityWire[] }>;

export interface ClickWatch {
  ws: WebSocket;
  /** [click count, Date.now() when first seen], increasing. */
  seen: Array<[number, number]>;
}

export async function watchClicks(baseUrl: string, tenant: string, probe: string, subscribe: { asset: string } | { campaign: string }): Promise<ClickWatch> {
  const ws = new WebSocket(`${baseUrl.replace('http', 'ws')}/v1/live?tenant_id=${tenant}`, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const seen: Array<[number, number]> = [];
  let clicks = 0;
  ws.on('message', (data: Buffer) => {
    const at = Date.now();
    const m = JSON.parse(data.toString()) as LiveMessage;
    for (const frame of Array.isArray(m) ? m : [m]) {
      for (const e of frame.entities ?? []) {
        if (e.id !== probe) continue;
        const c = Number(e.w['24h']?.[2] ?? 0);
        if (c > clicks) {
          clicks = c;
          seen.push([c, at]);
        }
      }
    }
  });
  ws.send(JSON.stringify({ op: 'subscribe', ...subscribe }));
  return { ws, seen };
}
