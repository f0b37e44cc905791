import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, createApiClient, pathOf, queryOf } from './client.js';
import { API_ROUTES, responsesOf } from './routes.js';
import { campaignTotalsSchema, intakeResultSchema } from './schemas.js';

/** A fetch that records each request and answers what `answer` gives. */
function recording(answer: (url: string, init: RequestInit) => Response) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = async (input: Parameters<typeof globalThis.fetch>[0], init?: RequestInit) => {
    calls.push({ url: String(input), init: init ?? {} });
    return answer(String(input), init ?? {});
  };
  return { calls, fetch };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

test('paths take their parameters encoded; a missing one is refused before any request', () => {
  assert.equal(pathOf('/v1/campaigns/:campaignId/costs', { campaignId: 'a b/c' }), '/v1/campaigns/a%20b%2Fc/costs');
  assert.equal(pathOf('/v1/assets/:id/keyframes/:shot/:k', { id: 'x', shot: 2, k: 0 }), '/v1/assets/x/keyframes/2/0');
  assert.throws(() => pathOf('/v1/assets/:id', {}), /path parameter id is missing/);
});

test('queries skip absent values and repeat arrays', () => {
  assert.equal(queryOf({ tenant_id: 't', from: undefined, to: null, dry_run: true, 'filter[region]': ['eu', 'us'] }), '?tenant_id=t&dry_run=true&filter%5Bregion%5D=eu&filter%5Bregion%5D=us');
  assert.equal(queryOf({}), '');
});

test('a call sends the method, the key, the query and a JSON body, and returns the parsed answer', async () => {
  const { calls, fetch } = recording(() => json(200, { rule: { rule_id: 'r' } }));
  const api = createApiClient({ baseUrl: 'http://api.test/', apiKey: () => 'ag_key', fetch });
  const answer = await api.putTriggerRule({ path: { rule_id: 'r' }, body: { kind: 'fatigue' }, query: { tenant_id: 't' } });
  assert.deepEqual(answer, { rule: { rule_id: 'r' } });
  const [call] = calls;
  assert.equal(call!.url, 'http://api.test/v1/triggers/rules/r?tenant_id=t');
  assert.equal(call!.init.method, 'PUT');
  assert.equal(call!.init.body, '{"kind":"fatigue"}');
  assert.deepEqual(call!.init.headers, { accept: 'application/json', authorization: 'Bearer ag_key', 'content-type': 'application/json' });
});

test('a FormData or bytes body is sent as it is, with the caller headers', async () => {
  const { calls, fetch } = recording(() => json(201, { asset: {} }));
  const api = createApiClient({ fetch });
  const form = new FormData();
  form.set('role', 'master');
  await api.registerAsset({ body: form });
  assert.equal(calls[0]!.init.body, form);
  assert.equal((calls[0]!.init.headers as Record<string, string>)['content-type'], undefined, 'fetch sets the multipart boundary');
  const bytes = new Uint8Array([1, 2, 3]);
  await api.importEvents({ body: bytes, headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' } });
  assert.equal(calls[1]!.init.body, bytes);
  assert.equal((calls[1]!.init.headers as Record<string, string>)['content-type'], 'application/x-ndjson');
});

test('a refusal is an ApiError with the stable code, the body and Retry-After; a non-JSON one says its status', async () => {
  const seen: ApiError[] = [];
  const refusing = recording(() => json(429, { error: 'rate_limited', message: 'slow down' }, { 'retry-after': '2' }));
  const api = createApiClient({ fetch: refusing.fetch, onError: (e) => seen.push(e) });
  await assert.rejects(
    () => api.listCampaigns({ query: { tenant_id: 't' } }),
    (err: unknown) => err instanceof ApiError && err.status === 429 && err.code === 'rate_limited' && err.message === 'slow down' && err.retryAfterMs === 2000,
  );
  assert.equal(seen.length, 1);
  const broken = recording(() => new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
  await assert.rejects(
    () => createApiClient({ fetch: broken.fetch }).health(),
    (err: unknown) => err instanceof ApiError && err.status === 502 && err.code === 'http_error' && err.body === undefined && err.retryAfterMs === undefined,
  );
});

test('a route documents its answers as closed JSON Schemas, with the non-error refusals it names', () => {
  const totals = responsesOf(API_ROUTES.campaignTotals)['200']!;
  assert.equal(totals.additionalProperties, false, 'a field the schema lacks is an error in the contract test');
  assert.deepEqual(totals.required, Object.keys(campaignTotalsSchema.shape));
  assert.equal('$schema' in totals, false);
  const events = responsesOf(API_ROUTES.postEvents, { 422: { description: 'every event rejected', schema: intakeResultSchema } });
  assert.deepEqual(Object.keys(events).sort(), ['202', '422']);
  assert.equal(events['422']!.description, 'every event rejected');
});
