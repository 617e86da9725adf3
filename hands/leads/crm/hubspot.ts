/**
 * HubSpot (CRM v3, documented REST API): a qualified lead becomes a company, created or updated by its domain.
 *
 *   POST  /crm/v3/objects/companies/search   { filterGroups: [{ filters: [{ propertyName: 'domain', operator: 'EQ',
 *                                             value }] }], properties: ['domain', 'name'], limit: 1 } → results[0].id
 *   PATCH /crm/v3/objects/companies/{id}     { properties }   when found (action `updated`)
 *   POST  /crm/v3/objects/companies          { properties }   otherwise (201, action `created`); a 409 (a company
 *                                             created meanwhile) → search again and PATCH
 * Auth: `Authorization: Bearer <private app token>` (the target's sealed secret; scopes crm.objects.companies.read and
 * .write). Base URL: the target's url (default https://api.hubapi.com).
 *
 * Properties sent: name, domain, website, phone, city (the lead's location), numberofemployees, description. Only
 * HubSpot's default properties, so nothing has to be created in the portal first: HubSpot's `industry` is an
 * enumeration of its own values (free text is refused with 400), so the industry, the e-mails, the contact, the
 * technologies and the Talon score with its reasons go into `description` (leadSummary in ./index.ts). A field the lead
 * lacks is not sent (an update keeps what the CRM has).
 *
 * HubSpot's search is eventually consistent (a company created a second ago may not be found yet): a re-send right
 * after a crash may still create a second company; HubSpot's 409 covers that only when the portal makes domain unique.
 * 429: Retry-After when HubSpot sends one (it usually sends X-HubSpot-RateLimit-* only), else the outbox's backoff.
 */
import type { CrmTarget, Lead } from '../types.ts';
import { type CrmClient, CrmError, type CrmEnv, crmCall, domainOf, leadSummary, tokenOf } from './index.ts';

/** a lead as HubSpot company properties (strings, as HubSpot keeps them) */
export function hubspotProperties(lead: Lead, domain: string): Record<string, string> {
  const p: Record<string, string> = { name: lead.company?.value || domain, domain };
  if (lead.website?.value) p.website = lead.website.value;
  if (lead.phones[0]?.value) p.phone = lead.phones[0].value;
  if (lead.location?.value) p.city = lead.location.value;
  if (lead.size !== undefined && Number.isFinite(lead.size.value) && lead.size.value >= 0)
    p.numberofemployees = String(Math.round(lead.size.value));
  p.description = leadSummary(lead).slice(0, 65_000);
  return p;
}

export function hubspotClient(target: CrmTarget, env: CrmEnv): CrmClient {
  const crm = target.name === 'hubspot' ? 'HubSpot' : `HubSpot (${target.name})`;
  const base = target.url.replace(/\/+$/, '');
  const companies = `${base}/crm/v3/objects/companies`;

  async function find(domain: string, auth: Record<string, string>): Promise<string | undefined> {
    const res = await crmCall(env, crm, `${companies}/search`, {
      method: 'POST',
      headers: auth,
      json: {
        filterGroups: [{ filters: [{ propertyName: 'domain', operator: 'EQ', value: domain }] }],
        properties: ['domain', 'name'],
        limit: 1,
      },
    });
    const results = (res.body as { results?: Array<{ id?: unknown }> } | undefined)?.results;
    if (!Array.isArray(results))
      throw new CrmError(`${crm}: the search answer has no results list`, { retryable: true });
    const id = results[0]?.id;
    return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
  }

  async function update(id: string, properties: Record<string, string>, auth: Record<string, string>) {
    await crmCall(env, crm, `${companies}/${encodeURIComponent(id)}`, {
      method: 'PATCH',
      headers: auth,
      json: { properties },
    });
    return { crmId: id, action: 'updated' as const };
  }

  return {
    async deliver(lead: Lead) {
      const domain = domainOf(crm, lead);
      const auth = { authorization: `Bearer ${await tokenOf(target, env)}` };
      const properties = hubspotProperties(lead, domain);
      const found = await find(domain, auth);
      if (found !== undefined) return update(found, properties, auth);
      try {
        const res = await crmCall(env, crm, companies, { method: 'POST', headers: auth, json: { properties } });
        const id = (res.body as { id?: unknown } | undefined)?.id;
        if (typeof id !== 'string' && typeof id !== 'number')
          // retried: the next try finds the company by its domain
          throw new CrmError(`${crm}: the create answer has no id`, { retryable: true, status: res.status });
        return { crmId: String(id), action: 'created' as const };
      } catch (err) {
        if (!(err instanceof CrmError) || err.status !== 409) throw err;
        // created meanwhile (another writer, or our own earlier try): look again and update it
        const again = await find(domain, auth);
        if (again === undefined)
          throw new CrmError(`${crm}: create answered 409 but no company with domain ${domain} is found yet`, {
            retryable: true,
            status: 409,
          });
        return update(again, properties, auth);
      }
    },
  };
}
