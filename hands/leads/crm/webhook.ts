/**
 * The generic webhook CRM target: each qualified lead is POSTed as JSON to the target's URL.
 *
 *   POST <url>
 *   Content-Type: application/json
 *   Idempotency-Key: <lead id>:<version>          the same lead version always carries the same key
 *   X-Talon-Signature: sha256=<hex HMAC-SHA256 of the body bytes with the secret>   (when the target names a secret)
 *   { "event": "lead.qualified", "id": "<lead id>", "version": "<version>", "lead": { …the Lead (../../types.ts) } }
 *
 * Any 2xx is success: the record's id is the answer's `id` (a JSON object with a string or number `id`), else the
 * idempotency key. A webhook cannot say whether it created or updated, so the action is `created`. The outbox may
 * send the same version twice after a crash: a receiver dedupes on the Idempotency-Key.
 */
import { createHmac } from 'node:crypto';
import type { CrmTarget, Lead } from '../types.ts';
import { type CrmClient, type CrmEnv, crmCall, tokenOf } from './index.ts';

export function webhookSignature(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

export function webhookClient(target: CrmTarget, env: CrmEnv): CrmClient {
  const crm = `webhook (${target.name})`;
  return {
    async deliver(lead: Lead) {
      const key = `${lead.id}:${lead.version}`;
      const body = JSON.stringify({ event: 'lead.qualified', id: lead.id, version: lead.version, lead });
      const headers: Record<string, string> = { 'idempotency-key': key };
      if (target.secret !== undefined)
        headers['x-talon-signature'] = webhookSignature(body, await tokenOf(target, env));
      const res = await crmCall(env, crm, target.url, { method: 'POST', headers, raw: body, anyBody: true });
      const id = (res.body as { id?: unknown } | undefined)?.id;
      const crmId = typeof id === 'string' && id !== '' ? id : typeof id === 'number' ? String(id) : key;
      return { crmId, action: 'created' as const };
    },
  };
}
