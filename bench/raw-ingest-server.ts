/**
 * The raw path bench:ingest compares Afterglow with: an HTTP server that parses each posted body
 * and inserts its events straight into the same store (in-process chDB, the same events_raw
 * table), with no validation, no bus, no dedup, no live view. Whatever Afterglow does on top of
 * this costs the difference. Run as a child process, like the real server, so each has the CPU.
 *
 *   node bench/dist/raw-ingest-server.js PORT DATA_DIR
 */
import http from 'node:http';
import { EventsRawRepository, SINGLE_NODE_SINK_INSERT_SETTINGS, TABLES, createStore, migrate, type RawRow } from '@afterglow/core';

const [port, dataDir] = process.argv.slice(2);
if (!port || !dataDir) throw new Error('usage: raw-ingest-server PORT DATA_DIR');
const store = await createStore({ kind: 'chdb', path: dataDir, database: 'afterglow' });
await migrate(store);
const raw = new EventsRawRepository(store);

type Posted = Omit<Partial<RawRow>, 'late'> & Pick<RawRow, 'event_id' | 'tenant_id' | 'campaign_id' | 'asset_id' | 'kind' | 'occurred_at'>;

async function body(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const server = http.createServer((req, res) => {
  void (async () => {
    try {
      if (req.method === 'POST' && req.url === '/v1/events') {
        const now = Date.now();
        const posted = JSON.parse((await body(req)).toString('utf8')) as Posted[];
        const rows: RawRow[] = posted.map((e) => ({
          tenant_id: e.tenant_id,
          event_id: e.event_id,
          campaign_id: e.campaign_id,
          asset_id: e.asset_id,
          kind: e.kind,
          value: e.value ?? 1,
          occurred_at: e.occurred_at,
          received_at: now,
          channel: '',
          placement: '',
          region: e.region ?? '',
          device: e.device ?? '',
          edge_node: '',
          viewer_hash: '',
          attrs: '',
          late: false,
        }));
        await raw.insert(rows, SINGLE_NODE_SINK_INSERT_SETTINGS);
        res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: rows.length, rejected: 0 }));
      } else if (req.method === 'GET' && req.url?.startsWith('/count?campaign=')) {
        const campaign = decodeURIComponent(req.url.slice('/count?campaign='.length));
        const rs = await store.client.query({ query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE campaign_id = {c:String}`, query_params: { c: campaign }, format: 'JSONEachRow' });
        const [row] = await rs.json<{ n: string }>();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ total: Number(row?.n ?? 0) }));
      } else if (req.url === '/readyz') res.writeHead(200).end('ok');
      else res.writeHead(404).end();
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  })();
});
server.listen(Number(port), '127.0.0.1');
process.once('SIGTERM', () => {
  server.close();
  void store.close().finally(() => process.exit(0));
});
