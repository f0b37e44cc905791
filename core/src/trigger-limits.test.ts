import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SNOOZE_LIMITS, TRIGGER_KINDS, TRIGGER_PARAM_SPECS, checkParam, checkRuleForm, snoozeEnd, type ParamSpec, type RuleForm } from './trigger-limits.js';
import { TRIGGER_PARAMS, triggerRuleInputSchema } from './triggers.js';

/** The dashboard's checks (trigger-limits.ts) and the server's zod schemas must refuse the same values. */

function probes(spec: ParamSpec): unknown[] {
  if (spec.type === 'enum') return [...spec.values, 'other', '', 3, null];
  const edges = [spec.min, spec.max, spec.gt, spec.lt].filter((x): x is number => x !== undefined);
  const near = edges.flatMap((e) => [e, e - 1e-9, e + 1e-9, e - 1, e + 1, e + 0.5]);
  return [...near, spec.default, 0, -1, 1.5, Number.NaN, Infinity, '1', null];
}

test('every parameter bound: checkParam agrees with the server schema', () => {
  let compared = 0;
  for (const kind of TRIGGER_KINDS) {
    const specs = TRIGGER_PARAM_SPECS[kind] as Record<string, ParamSpec>;
    for (const [name, spec] of Object.entries(specs)) {
      for (const value of probes(spec)) {
        const server = TRIGGER_PARAMS[kind].safeParse({ [name]: value }).success;
        const browser = checkParam(spec, value) === null;
        assert.equal(browser, server, `${kind}.${name} = ${String(value)}: dashboard ${browser}, server ${server}`);
        compared++;
      }
    }
    // Defaults are what the server fills in.
    const defaults = TRIGGER_PARAMS[kind].parse({}) as Record<string, unknown>;
    for (const [name, spec] of Object.entries(specs)) assert.equal(defaults[name], spec.default, `${kind}.${name} default`);
  }
  assert.ok(compared > 300, `${compared} comparisons`);
});

test('checkRuleForm refuses what the rule schema refuses', () => {
  const ok: RuleForm = { rule_id: 'r1', campaign_id: null, kind: 'fatigue', params: {}, cooldown_ms: 60_000, enabled: true, webhook_url: null };
  const cases: [Partial<RuleForm>, string | null][] = [
    [{}, null],
    [{ rule_id: '-bad' }, 'rule_id'],
    [{ rule_id: 'x'.repeat(129) }, 'rule_id'],
    [{ campaign_id: 'has space' }, 'campaign_id'],
    [{ kind: 'nope' }, 'kind'],
    [{ cooldown_ms: 0 }, 'cooldown_ms'],
    [{ cooldown_ms: 31 * 86_400_000 }, 'cooldown_ms'],
    [{ cooldown_ms: 1.5 }, 'cooldown_ms'],
    [{ webhook_url: 'ftp://x.test/' }, 'webhook_url'],
    [{ webhook_url: 'not a url' }, 'webhook_url'],
    [{ webhook_url: `https://x.test/${'a'.repeat(2048)}` }, 'webhook_url'],
    [{ webhook_url: 'https://hooks.example.test/a' }, null],
    [{ params: { fraction: 1 } }, 'params.fraction'],
  ];
  for (const [change, field] of cases) {
    const form: RuleForm = { ...ok, ...change };
    const errors = checkRuleForm(form);
    const server = triggerRuleInputSchema.safeParse({ ...form, tenant_id: 't' });
    const serverOk = server.success && TRIGGER_PARAMS.fatigue.safeParse(form.params).success;
    assert.deepEqual(Object.keys(errors), field ? [field] : [], JSON.stringify(change));
    assert.equal(serverOk, field === null, `server on ${JSON.stringify(change).slice(0, 80)}`);
  }
});

test('snoozeEnd: exactly one of until and for_ms, in the future, within the limit', () => {
  const now = 1_000_000;
  assert.deepEqual(snoozeEnd({ for_ms: 3_600_000 }, now), { until: now + 3_600_000 });
  assert.deepEqual(snoozeEnd({ until: now + 5 }, now), { until: now + 5 });
  assert.ok('error' in snoozeEnd({}, now));
  assert.ok('error' in snoozeEnd({ until: now + 5, for_ms: 5 }, now));
  assert.ok('error' in snoozeEnd({ until: now }, now));
  assert.ok('error' in snoozeEnd({ for_ms: 0 }, now));
  assert.ok('error' in snoozeEnd({ for_ms: SNOOZE_LIMITS.maxMs + 1 }, now));
  assert.deepEqual(snoozeEnd({ for_ms: SNOOZE_LIMITS.maxMs }, now), { until: now + SNOOZE_LIMITS.maxMs });
});
