/**
 * The kernel's health: what /healthz (503 when not ok), /api/v1/system/health and the
 * provisioning agent's health window read, and what the retained state topic says.
 *
 * - store: the store is open, its data folder has at least STORE_MIN_FREE_BYTES free, and
 *   writes to it do not fail (the audit chain is the store's canary: it writes on every action);
 * - audit: the audit chain can be written (while not, privileged actions are refused);
 * - bus, supervisor: up.
 *
 * The state topic `talon/<id>/state` (retained `online`, `offline` at shutdown and as the last
 * will) says `degraded` while the store or the audit log fail, and `online` again once they
 * recover; /healthz names the failing checks in `problems`.
 */
import type { Bus } from '../bus/types.ts';
import type { AuditHealth } from '../audit/chain.ts';
import type { Clock } from '../core/clock.ts';
import { topics } from '../core/topics.ts';

export interface Health {
  ok: boolean;
  deviceId: string;
  uptimeMs: number;
  checks: { store: boolean; bus: boolean; supervisor: boolean; audit: boolean };
  /** for each failing check, why (a person can act on it) */
  problems?: Partial<Record<keyof Health['checks'], string>>;
}

/** the same floor the store refuses to open under */
export const STORE_MIN_FREE_BYTES = 1024 * 1024;

export interface HealthSources {
  deviceId: string;
  uptimeMs: number;
  store: { isOpen(): boolean; freeBytes(): number | null };
  bus: { isUp(): boolean };
  supervisor: { isUp(): boolean };
  audit: { health(): AuditHealth };
  minFreeBytes?: number;
}

export function kernelHealth(s: HealthSources): Health {
  const audit = s.audit.health();
  const open = s.store.isOpen();
  const min = s.minFreeBytes ?? STORE_MIN_FREE_BYTES;
  const free = open ? s.store.freeBytes() : null;
  const low = free !== null && free < min;
  const checks = {
    store: open && !low && !audit.failing,
    bus: s.bus.isUp(),
    supervisor: s.supervisor.isUp(),
    audit: audit.ok,
  };
  const problems: NonNullable<Health['problems']> = {};
  if (!checks.store) {
    problems.store = !open
      ? 'the store is closed'
      : audit.failing
        ? `writing to the data folder fails: ${audit.failing.error}`
        : `the data folder has ${free} bytes free; Talon needs at least ${min}: free some space`;
  }
  if (!checks.audit) problems.audit = audit.reason ?? 'the audit log cannot be written';
  if (!checks.bus) problems.bus = 'the bus is down';
  if (!checks.supervisor) problems.supervisor = 'the supervisor is not running';
  const ok = checks.store && checks.bus && checks.supervisor && checks.audit;
  return { ok, deviceId: s.deviceId, uptimeMs: s.uptimeMs, checks, ...(ok ? {} : { problems }) };
}

/** store or audit failing: what the state topic calls `degraded` */
export function degraded(h: Health): boolean {
  return !h.checks.store || !h.checks.audit;
}

export interface StatePublisherOptions {
  bus: Bus;
  deviceId: string;
  health: () => Health;
  clock: Clock;
  /** the kernel is stopping (its audit log is): stop polling, leave the state to the bus (`offline`) */
  done: () => boolean;
  /** default 5000 */
  everyMs?: number;
}

/**
 * Keeps the retained state topic in step with the store and audit checks: `degraded` while one
 * fails (published again on every poll, since a reconnecting uplink republishes `online`),
 * `online` once both pass again. Stops by itself once `done()`.
 */
export class StatePublisher {
  #o: StatePublisherOptions;
  #timer: unknown = null;
  #degraded = false;

  constructor(opts: StatePublisherOptions) {
    this.#o = opts;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = this.#o.clock.setInterval(() => this.poke(), this.#o.everyMs ?? 5000);
    (this.#timer as { unref?: () => void } | null)?.unref?.();
    this.poke();
  }

  stop(): void {
    if (this.#timer) this.#o.clock.clearInterval(this.#timer);
    this.#timer = null;
  }

  /** checks now (the audit chain calls it when it fails or recovers) */
  poke(): void {
    if (this.#o.done()) {
      this.stop();
      return;
    }
    const bad = degraded(this.#o.health());
    if (!bad && !this.#degraded) return;
    const { bus } = this.#o;
    if (!bus.isUp()) return;
    this.#degraded = bad;
    bus.publish(topics.state(this.#o.deviceId), bad ? 'degraded' : 'online', { qos: 1, retain: true }).catch(() => {
      if (!bad) this.#degraded = true; // try `online` again on the next poll
    });
  }
}
