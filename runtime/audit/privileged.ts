/**
 * Privileged actions fail closed: the action's entry is written (synced, as every entry) before
 * it happens, and when that entry cannot be written the action does not happen at all: the
 * caller gets AUDIT_UNAVAILABLE (HTTP 503) and nothing changed. The outcome (`ok`, or `error`
 * with the code) follows as a second entry with the same actor, action and subject; the intent
 * entry's decision is `allow`. An outcome that cannot be written no longer undoes anything (the
 * action happened): it is counted by the chain and reported in its `audit.gap` entry.
 *
 * Every privileged path of the runtime API (Hands start/stop/restart and settings, config
 * apply and rollback, soft restart, secrets, bus publish, alerts, LLM calls, chats) and of the
 * web admin's accounts (first-run setup, users, tokens) goes through `privileged` (or `intend`).
 */
import type { Audit, AuditEvent } from './types.ts';
import { TalonError } from '../core/errors.ts';

/** refusals the action itself made: recorded as `deny` rather than `error` */
const DENIALS = new Set(['FORBIDDEN', 'CAPABILITY_DENIED', 'SCOPE_ESCALATION']);

export interface PrivilegedOptions<T> {
  /** also write the outcome entry (default true); false when the action audits its own outcome, `errors` when only its success */
  outcome?: boolean | 'errors';
  /** more detail for the `ok` entry, from the result */
  okDetail?: (result: T) => Record<string, unknown>;
}

export async function privileged<T>(
  audit: Audit,
  intent: Omit<AuditEvent, 'decision'>,
  act: () => Promise<T> | T,
  opts: PrivilegedOptions<T> = {},
): Promise<T> {
  const base = { actor: intent.actor, action: intent.action, subject: intent.subject };
  await intend(audit, intent);
  const outcome = opts.outcome ?? true;
  let result: T;
  try {
    result = await act();
  } catch (err) {
    const e = TalonError.from(err);
    if (outcome) {
      await audit
        .record({
          ...base,
          decision: DENIALS.has(e.code) ? 'deny' : 'error',
          detail: { ...intent.detail, code: e.code, message: e.message.slice(0, 300) },
        })
        .catch(() => {});
    }
    throw e;
  }
  if (outcome === true) {
    const more = opts.okDetail?.(result);
    await audit
      .record({ ...base, decision: 'ok', ...(intent.detail || more ? { detail: { ...intent.detail, ...more } } : {}) })
      .catch(() => {});
  }
  return result;
}

/** Writes the intent entry (`allow`), or throws AUDIT_UNAVAILABLE: for actions that are not one call (a stream). */
export async function intend(audit: Audit, intent: Omit<AuditEvent, 'decision'>): Promise<void> {
  try {
    await audit.record({
      actor: intent.actor,
      action: intent.action,
      subject: intent.subject,
      decision: 'allow',
      ...(intent.detail ? { detail: intent.detail } : {}),
    });
  } catch (err) {
    throw refused(err, intent.action);
  }
}

/** the intent entry was not written: the action is refused, with AUDIT_UNAVAILABLE whatever the audit's own error was */
export function refused(err: unknown, action: string): TalonError {
  const e = TalonError.from(err);
  if (e.code === 'AUDIT_UNAVAILABLE') return e;
  return new TalonError(
    'AUDIT_UNAVAILABLE',
    `${action} refused: its audit entry cannot be written (${e.message.slice(0, 300)})`,
    { cause: err },
  );
}
