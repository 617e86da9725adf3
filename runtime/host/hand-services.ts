/**
 * Kernel services for Hands that talk to people on their behalf (a messaging Hand):
 *
 *   secrets.get(name)                          a sealed secret's value, when the Hand's `secrets` grant names it
 *                                              (names or globs); every read audited `secret.read` (never the value)
 *   approvals.decide(id, decision, by, note?)  a person's answer to an approval request, relayed (a chat reply
 *                                              `approve <id>`), when the Hand's `approvals` grant is true; the person
 *                                              is recorded as `hand:<name>/<by>`; a Hand never answers its own requests
 * and the `notify` tool's way to the Hand whose surface takes notifications (hands/sdk/surface.ts `notify`).
 */
import type { Audit } from '../audit/types.ts';
import { TalonError } from '../core/errors.ts';
import { globMatches } from '../core/grants.ts';
import type { SecretStore } from '../secrets/sealed.ts';
import type { KernelService } from '../supervisor/types.ts';
import type { Approval, ApprovalsApi } from '../tools/types.ts';
import type { NotifyMessage, NotifyResult } from '../tools/builtin/kernel.ts';
import type { HandRequests } from '../api/hand-requests.ts';

const BY = /^[\p{L}\p{N} _.:@+#!/-]{1,120}$/u;
/** secret reads (granted or not) one Hand may make a minute: a Hand reads its secrets at start; a loop would flood the audit log */
export const SECRET_READS_PER_MIN = 30;

export function handServices(d: {
  secrets: SecretStore;
  audit: Audit;
  approvals: Pick<ApprovalsApi, 'get' | 'decide'>;
  now?: () => number;
}): Record<string, KernelService> {
  const now = d.now ?? Date.now;
  const reads = new Map<string, { window: number; n: number }>();
  return {
    'secrets.get': async (hand, args) => {
      const name = args[0];
      if (typeof name !== 'string' || name === '')
        throw new TalonError('BAD_REQUEST', 'secrets.get needs a secret name');
      const t = now();
      let r = reads.get(hand.name);
      if (!r || t - r.window >= 60_000) reads.set(hand.name, (r = { window: t, n: 0 }));
      if (++r.n > SECRET_READS_PER_MIN) {
        // audited once per window; the rest are refused unaudited (nothing is read)
        if (r.n === SECRET_READS_PER_MIN + 1)
          await d.audit.record({
            actor: `hand:${hand.name}`,
            action: 'secret.read',
            subject: name.slice(0, 64),
            decision: 'deny',
            detail: { reason: `over ${SECRET_READS_PER_MIN} reads a minute` },
          });
        throw new TalonError(
          'QUOTA_EXCEEDED',
          `Hand "${hand.name}" read secrets more than ${SECRET_READS_PER_MIN} times this minute; read each once and keep it`,
        );
      }
      const granted = hand.grants.secrets.some((g) => globMatches(g, name));
      if (!granted) {
        await d.audit.record({
          actor: `hand:${hand.name}`,
          action: 'secret.read',
          subject: name.slice(0, 64),
          decision: 'deny',
          detail: { reason: 'not in the secrets grant' },
        });
        throw new TalonError(
          'CAPABILITY_DENIED',
          `Hand "${hand.name}" may not read the secret "${name.slice(0, 64)}": add it to the Hand's capabilities.secrets`,
        );
      }
      const value = await d.secrets.get(name).catch(() => undefined);
      await d.audit.record({
        actor: `hand:${hand.name}`,
        action: 'secret.read',
        subject: name,
        decision: value === undefined ? 'error' : 'allow',
        ...(value === undefined && { detail: { reason: 'no such secret' } }),
      });
      return value ?? null;
    },
    'approvals.decide': async (hand, args) => {
      if (!hand.grants.approvals)
        throw new TalonError(
          'CAPABILITY_DENIED',
          `Hand "${hand.name}" may not relay answers to approval requests: its capabilities.approvals is not true`,
        );
      const [id, decision, by, note] = args;
      if (typeof id !== 'string' || (decision !== 'approve' && decision !== 'deny'))
        throw new TalonError('BAD_REQUEST', 'approvals.decide needs (id, "approve" | "deny", by, note?)');
      if (typeof by !== 'string' || !BY.test(by))
        throw new TalonError('BAD_REQUEST', 'approvals.decide: `by` names the person (at most 120 characters)');
      const a: Approval = await d.approvals.get(id);
      if (a.hand === hand.name)
        throw new TalonError('CAPABILITY_DENIED', `Hand "${hand.name}" may not answer its own approval request ${id}`);
      return d.approvals.decide(id, decision, `hand:${hand.name}/${by}`, typeof note === 'string' ? note : undefined);
    },
  };
}

interface NotifyAnswer {
  id?: string;
  decisions?: Array<{ kind?: string; channel?: string; reason?: string }>;
}

/** the `notify` tool's delivery: a request to the Hand that takes notifications, its decisions summed up */
export function notifier(
  requests: Pick<HandRequests, 'request'>,
  hand: string,
  kind: string,
): (m: NotifyMessage) => Promise<NotifyResult> {
  return async (m) => {
    const a = (await requests.request(hand, kind, {
      text: m.text,
      ...(m.title !== undefined && { title: m.title }),
      priority: m.priority,
      source: m.hand !== undefined ? `hand:${m.hand}` : m.from,
    })) as NotifyAnswer;
    const d = a.decisions ?? [];
    const channels = [...new Set(d.flatMap((x) => (x.kind !== 'drop' && x.channel ? [x.channel] : [])))];
    const held = d.filter((x) => x.kind === 'hold').length;
    const dropped = d.find((x) => x.kind === 'drop');
    return {
      delivered: channels.length > 0,
      channels,
      detail:
        channels.length > 0
          ? `queued as ${a.id ?? '?'} for ${channels.join(', ')}${held > 0 ? ` (${held} held for a digest, quiet hours or a rate limit)` : ''}`
          : `not sent: ${dropped?.reason ?? 'no route'}`,
    };
  };
}
