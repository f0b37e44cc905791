/** Served at `/` when the Svelte app has not been built (dashboard/dist/app is missing). */
export const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Afterglow: dashboard not built</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color-scheme:light dark}code{background:#8882;padding:.1em .3em;border-radius:4px}</style></head>
<body>
<h1>The dashboard is not built</h1>
<p>This server runs the dashboard role, but the Svelte app has not been built into <code>dashboard/dist/app</code>.
Run <code>npm run build</code> (or <code>npm start</code>, which builds first) and restart.</p>
<p>The API is up: <a href="/v1/campaigns?tenant_id=demo"><code>/v1/campaigns?tenant_id=demo</code></a>, <a href="/readyz"><code>/readyz</code></a>.</p>
</body>
</html>`;
