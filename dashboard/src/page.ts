/** A dependency-free live page: campaign totals per kind, refreshed every second. */
export const LIVE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Afterglow — live</title>
<style>
  :root { color-scheme: light dark; --fg:#1b1d22; --bg:#f7f7f9; --card:#fff; --muted:#6b7280; --accent:#e4572e; }
  @media (prefers-color-scheme: dark) { :root { --fg:#e8e8ea; --bg:#121317; --card:#1c1e24; --muted:#9aa0aa; } }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; background: var(--bg); color: var(--fg); }
  header { display:flex; align-items:baseline; gap:1rem; padding: 1rem 1.5rem; }
  h1 { font-size: 1.25rem; margin: 0; } h1 span { color: var(--accent); }
  #status { color: var(--muted); } #status.live::before { content:'● '; color:#2ca02c; } #status.down::before { content:'● '; color:#d62728; }
  main { padding: 0 1.5rem 2rem; }
  table { border-collapse: collapse; width: 100%; background: var(--card); border-radius: 8px; overflow: hidden; }
  th, td { text-align: right; padding: .5rem .75rem; border-bottom: 1px solid color-mix(in srgb, var(--muted) 25%, transparent); font-variant-numeric: tabular-nums; }
  th:first-child, td:first-child { text-align: left; }
  th { color: var(--muted); font-weight: 600; }
  .rate { color: var(--accent); }
</style>
</head>
<body>
<header><h1>After<span>glow</span> live</h1><label>tenant <input id="tenant" value="demo" size="10" aria-label="tenant id"></label><span id="status" role="status">connecting…</span></header>
<main>
<table aria-label="campaign totals">
<thead><tr><th scope="col">campaign</th><th scope="col">assets</th><th scope="col">events/s</th><th scope="col">impressions</th><th scope="col">views</th><th scope="col">clicks</th><th scope="col">CTR</th><th scope="col">likes</th><th scope="col">shares</th><th scope="col">comments</th><th scope="col">conversions</th><th scope="col">total</th></tr></thead>
<tbody id="rows"><tr><td colspan="12">waiting for data…</td></tr></tbody>
</table>
</main>
<script type="module">
const rows = document.getElementById('rows'), status = document.getElementById('status'), tenant = document.getElementById('tenant');
const last = new Map();
const fmt = (n) => n.toLocaleString();
async function refresh() {
  try {
    const res = await fetch('/v1/campaigns?tenant_id=' + encodeURIComponent(tenant.value));
    if (!res.ok) throw new Error(res.status);
    const body = await res.json(), now = performance.now();
    status.textContent = 'live'; status.className = 'live';
    if (!body.campaigns.length) { rows.innerHTML = '<tr><td colspan="12">no events yet</td></tr>'; return; }
    rows.replaceChildren(...body.campaigns.map((c) => {
      const prev = last.get(c.campaign_id); last.set(c.campaign_id, { total: c.total, at: now });
      const rate = prev ? Math.max(0, (c.total - prev.total) / ((now - prev.at) / 1000)) : 0;
      const k = c.counts, ctr = k.impression ? (100 * k.click / k.impression).toFixed(2) + '%' : '—';
      const tr = document.createElement('tr');
      tr.dataset.campaign = c.campaign_id;
      for (const v of [c.campaign_id, c.assets, Math.round(rate), k.impression, k.view, k.click, ctr, k.like, k.share, k.comment, k.conversion, c.total]) {
        const td = document.createElement('td'); td.textContent = typeof v === 'number' ? fmt(v) : v; tr.append(td);
      }
      tr.children[2].className = 'rate';
      return tr;
    }));
  } catch (e) { status.textContent = 'reconnecting'; status.className = 'down'; }
}
refresh(); setInterval(refresh, 1000);
</script>
</body>
</html>`;
