/**
 * Pipedrive (API v1, documented REST API): a qualified lead becomes an organization, created or updated by its domain.
 *
 * Pipedrive organizations have no domain field, so the target names one: `domainField`, the 40-hex key of an
 * organization custom field (a text field the user creates, e.g. "Domain"; parseCrmTarget requires it).
 *
 *   GET  /api/v1/organizations/search?term=<domain>&fields=custom_fields&exact_match=true&limit=1
 *                                       → data.items[0].item.id
 *   PUT  /api/v1/organizations/{id}    { name, address?, <domainField>: domain }   when found (action `updated`)
 *   POST /api/v1/organizations         { name, address?, <domainField>: domain }   otherwise (action `created`), then
 *   POST /api/v1/notes                 { org_id, content }   the lead's details (website, e-mails, phones, industry,
 *                                       size, score and reasons) as a note, on create only and best effort (a note
 *                                       that fails does not fail the delivery: the organization is there)
 * Auth: the `x-api-token: <API token>` header (the target's sealed secret; the header rather than `?api_token=`, so the
 * token is in no URL and no log). Base URL: the target's url (default https://api.pipedrive.com).
 *
 * Pipedrive answers `{ success, data }`; `success: false` in a 2xx is an error. 429: Retry-After, else
 * `x-ratelimit-reset` (seconds until the window resets), else the outbox's backoff. Search is near real time but not
 * transactional: a re-send right after a crash finds the organization in the normal case (then an update).
 */
import type { CrmTarget, Lead } from '../types.ts';
import { type CrmClient, CrmError, type CrmEnv, crmCall, domainOf, leadSummary, tokenOf } from './index.ts';

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Pipedrive's x-ratelimit-reset (seconds) as ms */
function resetOf(h: Headers): number | undefined {
  const v = h.get('x-ratelimit-reset');
  return v !== null && /^\d+(\.\d+)?$/.test(v.trim()) ? Math.round(Number(v) * 1000) : undefined;
}

/** a lead as a Pipedrive organization body */
export function pipedriveOrg(lead: Lead, domain: string, domainField: string): Record<string, string> {
  const o: Record<string, string> = { name: lead.company?.value || domain, [domainField]: domain };
  if (lead.location?.value) o.address = lead.location.value;
  return o;
}

/** the note added to a new organization (HTML: Pipedrive's notes are) */
export function pipedriveNote(lead: Lead): string {
  const lines: string[] = [];
  if (lead.website?.value) lines.push(`Website: ${lead.website.value}`);
  if (lead.phones.length > 0) lines.push(`Phone: ${lead.phones.map((p) => p.value).join(', ')}`);
  if (lead.size !== undefined) lines.push(`Employees: ${lead.size.value}`);
  lines.push(leadSummary(lead));
  return lines
    .join('\n')
    .split('\n')
    .map((l) => escapeHtml(l))
    .join('<br>');
}

export function pipedriveClient(target: CrmTarget, env: CrmEnv): CrmClient {
  const crm = target.name === 'pipedrive' ? 'Pipedrive' : `Pipedrive (${target.name})`;
  const base = `${target.url.replace(/\/+$/, '')}/api/v1`;

  const data = (body: unknown, what: string): Record<string, unknown> => {
    const b = body as { success?: unknown; data?: unknown; error?: unknown } | undefined;
    if (b?.success === false)
      throw new CrmError(`${crm}: ${what} failed: ${String(b.error ?? 'success: false')}`, { retryable: false });
    return (b?.data ?? {}) as Record<string, unknown>;
  };

  return {
    async deliver(lead: Lead) {
      const field = target.domainField;
      if (field === undefined)
        throw new CrmError(`${crm}: the target has no domainField (the organization custom field for the domain)`, {
          retryable: false,
        });
      const domain = domainOf(crm, lead);
      const headers = { 'x-api-token': await tokenOf(target, env) };
      const call = { headers, waitOf: resetOf };
      const q = new URLSearchParams({ term: domain, fields: 'custom_fields', exact_match: 'true', limit: '1' });
      const search = await crmCall(env, crm, `${base}/organizations/search?${q}`, call);
      const items = data(search.body, 'search').items;
      if (items !== undefined && items !== null && !Array.isArray(items))
        throw new CrmError(`${crm}: the search answer's data.items is not a list`, { retryable: true });
      const hit = (items as Array<{ item?: { id?: unknown } }> | undefined | null)?.[0]?.item?.id;
      const org = pipedriveOrg(lead, domain, field);
      if (typeof hit === 'number' || typeof hit === 'string') {
        const res = await crmCall(env, crm, `${base}/organizations/${encodeURIComponent(String(hit))}`, {
          ...call,
          method: 'PUT',
          json: org,
        });
        data(res.body, 'update');
        return { crmId: String(hit), action: 'updated' as const };
      }
      const res = await crmCall(env, crm, `${base}/organizations`, { ...call, method: 'POST', json: org });
      const id = data(res.body, 'create').id;
      // retried: the next try finds the organization by its domain
      if (typeof id !== 'number' && typeof id !== 'string')
        throw new CrmError(`${crm}: the create answer has no data.id`, { retryable: true });
      try {
        data(
          (
            await crmCall(env, crm, `${base}/notes`, {
              ...call,
              method: 'POST',
              json: { org_id: id, content: pipedriveNote(lead) },
            })
          ).body,
          'note',
        );
      } catch {
        /* best effort: the organization exists; the note is a convenience */
      }
      return { crmId: String(id), action: 'created' as const };
    },
  };
}
