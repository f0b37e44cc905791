import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import {
  BadRequestError,
  SNOOZE_LIMITS,
  actingTenant,
  parseTriggerParams,
  principalOf,
  snoozeEnd,
  triggerAckInputSchema,
  triggerRuleInputSchema,
  triggerSnoozeInputSchema,
  type TriggerAck,
  type TriggerRule,
  type TriggerSnooze,
} from '@afterglow/core';
import { API_ROUTES, responsesOf, serializeWhole, type ResponseOf } from '@afterglow/core/api';
import type { LiveReader } from '../live/reader.js';
import type { EgressPolicy } from './egress.js';
import type { TriggerEngine } from './engine.js';
import type { Snoozes } from './snooze.js';
import type { StoredRule, StoredSnooze, TriggerStore } from './store.js';

export interface TriggerRoutesDeps {
  store: TriggerStore;
  /** Absent when this process evaluates no rules (TRIGGERS_ENABLED=0): writes still land in the store. */
  engine: TriggerEngine | undefined;
  reader: LiveReader;
  /** Webhook URLs are checked (and their hosts resolved) against it before a rule is saved. */
  egress: EgressPolicy;
  snoozes: Snoozes;
  clock?: () => number;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;

/**
 * The triggers API (live role), see /tmp/afterglow-api-spec.md "Triggers". Rules are listed with their running snoozes.
 *   GET    /v1/triggers/rules?tenant_id[&campaign_id]           read
 *   PUT    /v1/triggers/rules/:rule_id                           admin, body = Rule (+ webhook_secret, write-only);
 *                                                                a webhook_url the egress policy refuses: 422 webhook_*
 *   DELETE /v1/triggers/rules/:rule_id?tenant_id                 admin
 *   PUT    /v1/triggers/rules/:rule_id/snooze                    admin, body { until | for_ms, asset_id? | campaign_id?, note? }:
 *                                                                the rule (for that asset / campaign only) does not fire until then
 *   DELETE /v1/triggers/rules/:rule_id/snooze?tenant_id[&asset_id|&campaign_id]   admin: un-snooze
 *   GET    /v1/triggers/log?tenant_id[&campaign_id][&limit]      read; each firing's `acknowledged` (null or who, when, note)
 *   POST   /v1/triggers/firings/:firing_id/ack                   admin, body { by?, note? }: 409 already_acknowledged the second time
 *   GET    /v1/triggers/firings/:firing_id?tenant_id             read: one firing, the replaced creative's live
 *                                                                metrics next to its new variants' (the closed loop)
 */
export async function registerTriggerRoutes(app: FastifyInstance, deps: TriggerRoutesDeps): Promise<void> {
  const clock = deps.clock ?? Date.now;

  app.get(
    '/v1/triggers/rules',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: { querystring: { type: 'object', properties: { tenant_id: ID, campaign_id: ID } }, response: responsesOf(API_ROUTES.triggerRules) },
    },
    async (req): Promise<ResponseOf<'triggerRules'>> => {
      const q = req.query as { tenant_id?: string; campaign_id?: string };
      const tenant = actingTenant(principalOf(req), q.tenant_id);
      const [rules, snoozes] = await Promise.all([
        deps.store.rules({ tenant, ...(q.campaign_id !== undefined ? { campaign: q.campaign_id } : {}) }),
        deps.store.snoozes({ tenant, activeAt: clock() }),
      ]);
      return { rules: rules.map((r) => ({ ...publicRule(r), snoozes: snoozes.filter((s) => s.rule_id === r.rule_id).map(publicSnooze) })) };
    },
  );

  const putRule = {
    config: { scope: 'admin' },
    serializerCompiler: serializeWhole,
    schema: { params: { type: 'object', required: ['rule_id'], properties: { rule_id: ID } }, response: responsesOf(API_ROUTES.putTriggerRule) },
  } as const;
  app.put('/v1/triggers/rules/:rule_id', putRule, async (req): Promise<ResponseOf<'putTriggerRule'>> => {
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
    {
      config: { scope: 'admin' },
      serializerCompiler: serializeWhole,
      schema: {
        params: { type: 'object', required: ['rule_id'], properties: { rule_id: ID } },
        querystring: { type: 'object', properties: { tenant_id: ID } },
        response: responsesOf(API_ROUTES.deleteTriggerRule),
      },
    },
    async (req, reply) => {
      const { rule_id } = req.params as { rule_id: string };
      const tenant = actingTenant(principalOf(req), (req.query as { tenant_id?: string }).tenant_id);
      if (!(await deps.store.deleteRule(tenant, rule_id, clock()))) return reply.code(404).send({ error: 'not_found', message: `no rule ${rule_id}` });
      await deps.snoozes.removeAll(tenant, rule_id);
      await deps.engine?.refreshRules().catch(() => undefined);
      return { deleted: rule_id };
    },
  );

  const ruleParams = { type: 'object', required: ['rule_id'], properties: { rule_id: ID } } as const;
  const ruleOf = async (tenant: string, ruleId: string): Promise<StoredRule> => {
    const [rule] = await deps.store.rules({ tenant, ruleId });
    // Another tenant's rule reads as absent: nothing says it exists.
    if (!rule) throw new BadRequestError('not_found', `no rule ${ruleId}`, 404);
    return rule;
  };

  const snooze = { config: { scope: 'admin' }, serializerCompiler: serializeWhole, schema: { params: ruleParams, response: responsesOf(API_ROUTES.snoozeTriggerRule) } } as const;
  app.put('/v1/triggers/rules/:rule_id/snooze', snooze, async (req): Promise<ResponseOf<'snoozeTriggerRule'>> => {
    const { rule_id } = req.params as { rule_id: string };
    const principal = principalOf(req);
    // The tenant first: a key naming another tenant is refused (403) whatever else the body says.
    const tenant = actingTenant(principal, claimedTenant(req.body));
    const parsed = triggerSnoozeInputSchema.safeParse(req.body ?? {});
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new BadRequestError('invalid_snooze', `${i.path.join('.') || 'snooze'}: ${i.message}`);
    }
    const input = parsed.data;
    const now = clock();
    const end = snoozeEnd(input, now);
    if ('error' in end) throw new BadRequestError('invalid_snooze', end.error);
    await ruleOf(tenant, rule_id);
    const target = { asset_id: input.asset_id ?? null, campaign_id: input.campaign_id ?? null };
    const running = await deps.store.snoozes({ tenant, ruleId: rule_id, activeAt: now });
    const replaces = running.some((s) => s.asset_id === target.asset_id && s.campaign_id === target.campaign_id);
    if (!replaces && running.length >= SNOOZE_LIMITS.perRuleMax) {
      throw new BadRequestError('too_many_snoozes', `a rule has at most ${SNOOZE_LIMITS.perRuleMax} running snoozes; snooze the whole rule instead`, 422);
    }
    const snooze: StoredSnooze = { tenant_id: tenant, rule_id, ...target, until: end.until, note: input.note ?? null, by: principal?.keyId ?? null, created_at: now };
    await deps.snoozes.put(snooze);
    return { snooze: publicSnooze(snooze) };
  });

  app.delete(
    '/v1/triggers/rules/:rule_id/snooze',
    {
      config: { scope: 'admin' },
      serializerCompiler: serializeWhole,
      schema: {
        params: ruleParams,
        querystring: { type: 'object', additionalProperties: false, properties: { tenant_id: ID, asset_id: ID, campaign_id: ID } },
        response: responsesOf(API_ROUTES.unsnoozeTriggerRule),
      },
    },
    async (req): Promise<ResponseOf<'unsnoozeTriggerRule'>> => {
      const { rule_id } = req.params as { rule_id: string };
      const q = req.query as { tenant_id?: string; asset_id?: string; campaign_id?: string };
      if (q.asset_id !== undefined && q.campaign_id !== undefined) throw new BadRequestError('invalid_snooze', 'un-snooze one asset or one campaign, not both');
      const tenant = actingTenant(principalOf(req), q.tenant_id);
      await ruleOf(tenant, rule_id);
      const target = { asset_id: q.asset_id ?? null, campaign_id: q.campaign_id ?? null };
      if (!(await deps.snoozes.remove(tenant, rule_id, target))) throw new BadRequestError('not_found', `rule ${rule_id} has no running snooze for that target`, 404);
      return { unsnoozed: { rule_id, ...target } };
    },
  );

  app.post(
    '/v1/triggers/firings/:firing_id/ack',
    {
      config: { scope: 'admin' },
      serializerCompiler: serializeWhole,
      schema: { params: { type: 'object', required: ['firing_id'], properties: { firing_id: ID } }, response: responsesOf(API_ROUTES.ackFiring) },
    },
    async (req): Promise<ResponseOf<'ackFiring'>> => {
      const { firing_id } = req.params as { firing_id: string };
      const principal = principalOf(req);
      const tenant = actingTenant(principal, claimedTenant(req.body));
      const parsed = triggerAckInputSchema.safeParse(req.body ?? {});
      if (!parsed.success) {
        const i = parsed.error.issues[0]!;
        throw new BadRequestError('invalid_ack', `${i.path.join('.') || 'ack'}: ${i.message}`);
      }
      const [firing] = await deps.store.log(tenant, { firingId: firing_id, limit: 1 });
      if (!firing) throw new BadRequestError('not_found', `no firing ${firing_id}`, 404);
      if (firing.acknowledged) throw new BadRequestError('already_acknowledged', `acknowledged by ${firing.acknowledged.by} at ${new Date(firing.acknowledged.at).toISOString()}`, 409);
      const ack: TriggerAck = { by: parsed.data.by ?? principal?.keyId ?? 'anonymous', key_id: principal?.keyId ?? null, at: clock(), note: parsed.data.note || null };
      await deps.store.putAck(tenant, firing_id, ack);
      return { firing_id, acknowledged: ack };
    },
  );

  app.get(
    '/v1/triggers/log',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: {
        querystring: { type: 'object', properties: { tenant_id: ID, campaign_id: ID, limit: { type: 'integer', minimum: 1, maximum: 1000 } } },
        response: responsesOf(API_ROUTES.triggersLog),
      },
    },
    async (req): Promise<ResponseOf<'triggersLog'>> => {
      const q = req.query as { tenant_id?: string; campaign_id?: string; limit?: number };
      const tenant = actingTenant(principalOf(req), q.tenant_id);
      const firings = await deps.store.log(tenant, { limit: q.limit ?? 100, ...(q.campaign_id !== undefined ? { campaign: q.campaign_id } : {}) });
      return { firings: await withMasterNow(deps.reader, tenant, firings) };
    },
  );

  app.get(
    '/v1/triggers/firings/:firing_id',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: {
        params: { type: 'object', required: ['firing_id'], properties: { firing_id: ID } },
        querystring: { type: 'object', properties: { tenant_id: ID } },
        response: responsesOf(API_ROUTES.triggerFiring),
      },
    },
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

/** The tenant_id a body claims, if it names one as text (the schema checks its form after). */
function claimedTenant(body: unknown): string | undefined {
  const t = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as { tenant_id?: unknown }).tenant_id : undefined;
  return typeof t === 'string' ? t : undefined;
}

function publicSnooze(s: StoredSnooze): TriggerSnooze {
  const { tenant_id: _tenant, ...rest } = s;
  return rest;
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
