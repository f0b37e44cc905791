import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { BadRequestError, actingTenant, parseTriggerParams, principalOf, triggerRuleInputSchema, type TriggerRule } from '@afterglow/core';
import type { LiveReader } from '../live/reader.js';
import type { EgressPolicy } from './egress.js';
import type { TriggerEngine } from './engine.js';
import type { StoredRule, TriggerStore } from './store.js';

export interface TriggerRoutesDeps {
  store: TriggerStore;
  /** Absent when this process evaluates no rules (TRIGGERS_ENABLED=0): writes still land in the store. */
  engine: TriggerEngine | undefined;
  reader: LiveReader;
  /** Webhook URLs are checked (and their hosts resolved) against it before a rule is saved. */
  egress: EgressPolicy;
  clock?: () => number;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;

/**
 * The triggers API (live role), see /tmp/afterglow-api-spec.md "Triggers":
 *   GET    /v1/triggers/rules?tenant_id[&campaign_id]           read
 *   PUT    /v1/triggers/rules/:rule_id                           admin, body = Rule (+ webhook_secret, write-only);
 *                                                                a webhook_url the egress policy refuses: 422 webhook_*
 *   DELETE /v1/triggers/rules/:rule_id?tenant_id                 admin
 *   GET    /v1/triggers/log?tenant_id[&campaign_id][&limit]      read
 *   GET    /v1/triggers/firings/:firing_id?tenant_id             read: one firing, the replaced creative's live
 *                                                                metrics next to its new variants' (the closed loop)
 */
export async function registerTriggerRoutes(app: FastifyInstance, deps: TriggerRoutesDeps): Promise<void> {
  const clock = deps.clock ?? Date.now;

  app.get(
    '/v1/triggers/rules',
    { config: { scope: 'read' }, schema: { querystring: { type: 'object', properties: { tenant_id: ID, campaign_id: ID } } } },
    async (req) => {
      const q = req.query as { tenant_id?: string; campaign_id?: string };
      const tenant = actingTenant(principalOf(req), q.tenant_id);
      const rules = await deps.store.rules({ tenant, ...(q.campaign_id !== undefined ? { campaign: q.campaign_id } : {}) });
      return { rules: rules.map(publicRule) };
    },
  );

  app.put('/v1/triggers/rules/:rule_id', { config: { scope: 'admin' }, schema: { params: { type: 'object', required: ['rule_id'], properties: { rule_id: ID } } } }, async (req) => {
    const { rule_id } = req.params as { rule_id: string };
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('invalid_rule', 'the body must be a rule object');
    if (body.rule_id !== undefined && body.rule_id !== rule_id) throw new BadRequestError('invalid_rule', 'rule_id in the body differs from the path');
    const tenant = actingTenant(principalOf(req), typeof body.tenant_id === 'string' ? body.tenant_id : undefined);
    // Before the schema, so a refused scheme gets the policy's code; resolves the host (names too).
    if (typeof body.webhook_url === 'string') await deps.egress.check(body.webhook_url);
    const parsed = triggerRuleInputSchema.safeParse({ ...body, rule_id, tenant_id: tenant });
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new BadRequestError('invalid_rule', `${i.path.join('.') || 'rule'}: ${i.message}`);
    }
    const input = parsed.data;
    let params: Record<string, unknown>;
    try {
      params = parseTriggerParams(input.kind, input.params) as Record<string, unknown>;
    } catch (err) {
      const issue = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues?.[0];
      throw new BadRequestError('invalid_params', issue ? `params.${issue.path.map(String).join('.')}: ${issue.message}` : String(err));
    }
    const [existing] = await deps.store.rules({ tenant, ruleId: rule_id });
    let generated: string | undefined;
    let secret = input.webhook_secret ?? existing?.webhook_secret ?? null;
    if (input.webhook_url && !secret) secret = generated = randomBytes(24).toString('base64url');
    const rule: StoredRule = {
      rule_id,
      tenant_id: tenant,
      campaign_id: input.campaign_id,
      kind: input.kind,
      params,
      cooldown_ms: input.cooldown_ms,
      enabled: input.enabled,
      webhook_url: input.webhook_url,
      webhook_secret: secret,
      webhook_secret_set: secret !== null,
      updated_at: clock(),
    };
    await deps.store.putRule(rule);
    await deps.engine?.refreshRules().catch(() => undefined);
    // The secret is shown once, when the server made it.
    return { rule: publicRule(rule), ...(generated ? { webhook_secret: generated } : {}) };
  });

  app.delete(
    '/v1/triggers/rules/:rule_id',
    { config: { scope: 'admin' }, schema: { params: { type: 'object', required: ['rule_id'], properties: { rule_id: ID } }, querystring: { type: 'object', properties: { tenant_id: ID } } } },
    async (req, reply) => {
      const { rule_id } = req.params as { rule_id: string };
      const tenant = actingTenant(principalOf(req), (req.query as { tenant_id?: string }).tenant_id);
      if (!(await deps.store.deleteRule(tenant, rule_id, clock()))) return reply.code(404).send({ error: 'not_found', message: `no rule ${rule_id}` });
      await deps.engine?.refreshRules().catch(() => undefined);
      return { deleted: rule_id };
    },
  );

  app.get(
    '/v1/triggers/log',
    {
      config: { scope: 'read' },
      schema: { querystring: { type: 'object', properties: { tenant_id: ID, campaign_id: ID, limit: { type: 'integer', minimum: 1, maximum: 1000 } } } },
    },
    async (req) => {
      const q = req.query as { tenant_id?: string; campaign_id?: string; limit?: number };
      const tenant = actingTenant(principalOf(req), q.tenant_id);
      const firings = await deps.store.log(tenant, { limit: q.limit ?? 100, ...(q.campaign_id !== undefined ? { campaign: q.campaign_id } : {}) });
      return { firings: await withMasterNow(deps.reader, tenant, firings) };
    },
  );

  app.get(
    '/v1/triggers/firings/:firing_id',
    { config: { scope: 'read' }, schema: { params: { type: 'object', required: ['firing_id'], properties: { firing_id: ID } }, querystring: { type: 'object', properties: { tenant_id: ID } } } },
    async (req, reply) => {
      const { firing_id } = req.params as { firing_id: string };
      const tenant = actingTenant(principalOf(req), (req.query as { tenant_id?: string }).tenant_id);
      const [firing] = await withMasterNow(deps.reader, tenant, await deps.store.log(tenant, { firingId: firing_id, limit: 1 }));
      if (!firing) return reply.code(404).send({ error: 'not_found', message: `no firing ${firing_id}` });
      const now = clock();
      const [replaced, ...variants] = await Promise.all([firing.asset_id, ...firing.replaced_by.map((v) => v.asset_id)].map((id) => deps.reader.assetMetrics(tenant, id, now)));
      return {
        firing,
        replaced: { asset_id: firing.asset_id, metrics: replaced ?? null },
        variants: firing.replaced_by.map((v, i) => ({ ...v, metrics: variants[i] ?? null })),
      };
    },
  );
}

function publicRule(r: StoredRule): TriggerRule {
  const { webhook_secret: _secret, ...rest } = r;
  return rest;
}

/**
 * Each firing with `master_now`: the master its creative counts for now (the tie the live roll-ups
 * use), beside `master_asset_id`, the one it counted for when it fired.
 */
async function withMasterNow<F extends { asset_id: string }>(reader: LiveReader, tenant: string, firings: F[]): Promise<Array<F & { master_now: string | null }>> {
  const now = await reader.tieMasters(tenant, firings.map((f) => f.asset_id));
  return firings.map((f) => ({ ...f, master_now: now.get(f.asset_id) ?? null }));
}
