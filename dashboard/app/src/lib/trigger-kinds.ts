import type { TriggerKind } from '@afterglow/core/trigger-limits';

/** Each rule kind as the rule editor's picker names it; typed by the kinds, so a new kind cannot be missed. */
export const KIND_TITLE: Record<TriggerKind, string> = {
  fatigue: 'Fatigue (engagement decays)',
  underperformance: 'Under-performance',
  velocity_spike: 'Velocity spike',
  tie_anomaly: 'Tie anomaly',
  frequency: 'Frequency (too often)',
  cost_per_result: 'Cost per result rise',
  hook_rate_drop: 'Hook rate drop (video)',
  completion_drop: 'Completion drop (video)',
};

/** Each rule kind as the rule list and the firing log badge it. */
export const KIND_BADGE: Record<TriggerKind, string> = {
  fatigue: 'fatigue',
  underperformance: 'under-performance',
  velocity_spike: 'velocity spike',
  tie_anomaly: 'tie anomaly',
  frequency: 'frequency',
  cost_per_result: 'cost per result',
  hook_rate_drop: 'hook rate drop',
  completion_drop: 'completion drop',
};

/** A kind's badge text; a kind this build does not know (a newer server) shows as sent. */
export const kindBadge = (kind: string): string => (KIND_BADGE as Record<string, string>)[kind] ?? kind;
