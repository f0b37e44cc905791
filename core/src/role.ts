/**
 * What a role's `start<Role>(deps)` hands back to the composition root, which creates the adapters
 * (bus, store, hot state, fan-out) and passes them in: the role's readiness checks and its stop.
 */
export interface RoleHandle {
  /** Named readiness checks, merged into `/readyz` by the root; each resolves while its dependency answers. */
  readonly ready: Readonly<Record<string, () => Promise<unknown>>>;
  /** Graceful: finish or hand back the work in hand, then release what the role opened (never the adapters passed in). */
  stop(): Promise<void>;
}
