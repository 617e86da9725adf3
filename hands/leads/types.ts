/**
 * The Lead Generation Hand's records: criteria (the ideal customer profile), sources, leads with the source of every
 * field, scores, CRM targets and deliveries. Pure types: imported by the worker, the surface and the tests.
 */
import type { ListSelectors } from '../sdk/web/types.ts';

export interface Criteria {
  industries: string[];
  locations: string[];
  /** employees */
  size?: { min?: number; max?: number };
  keywords: string[];
  technologies: string[];
  exclude: { domains: string[]; keywords: string[]; industries: string[] };
}

export type LeadSource =
  /** a page with a list (a directory, exhibitors): CSS selectors, or the model into a JSON Schema; `next` follows pages */
  | {
      kind: 'list';
      name: string;
      url: string;
      selectors?: ListSelectors;
      extract?: 'model';
      next?: string;
      maxPages: number;
    }
  /** a CSV or JSON file (path the fs grant allows, or URL); `map` renames columns to lead fields */
  | { kind: 'import'; name: string; path?: string; url?: string; format: 'csv' | 'json'; map: Record<string, string> }
  | { kind: 'feed'; name: string; url: string }
  | { kind: 'search'; name: string; query: string; max: number };

/** the lead fields a source or the enrichment may fill */
export const LEAD_FIELDS = [
  'company',
  'website',
  'email',
  'phone',
  'contact',
  'title',
  'industry',
  'location',
  'size',
  'description',
] as const;
export type LeadField = (typeof LEAD_FIELDS)[number];

/** what a source found, before dedup and enrichment */
export interface RawLead {
  fields: Partial<Record<LeadField, string>>;
  /** the page (or file) it was read from */
  sourceUrl: string;
  source: string;
}

/** a field's value and where it came from */
export interface Sourced<T = string> {
  value: T;
  /** the URL (or file:// path) the value was read from; `dns:MX <domain>` for MX records */
  source: string;
  at: number;
}

export interface Lead {
  /** `d:<normalized domain>` or `e:<normalized email>` when there is no company domain */
  id: string;
  domain?: string;
  company?: Sourced;
  website?: Sourced;
  emails: Sourced[];
  phones: Sourced[];
  contact?: Sourced;
  title?: Sourced;
  industry?: Sourced;
  location?: Sourced;
  size?: Sourced<number>;
  description?: Sourced;
  social: Sourced[];
  technologies: Sourced[];
  mx: Sourced[];
  score: number;
  /** the rules that gave points (`industry: robotics +25`) */
  reasons: string[];
  /** the model's judgement, when asked and it answered valid JSON */
  model?: { score: number; reason: string };
  status: 'new' | 'qualified' | 'unqualified' | 'excluded';
  excludedBy?: string;
  sources: string[];
  firstSeen: number;
  lastSeen: number;
  enrichedAt?: number;
  /** a hash of what a CRM gets: a lead whose delivered content changed is delivered again (an update) */
  version: string;
}

export type CrmKind = 'webhook' | 'hubspot' | 'pipedrive';

export interface CrmTarget {
  name: string;
  kind: CrmKind;
  /** webhook: the URL; hubspot/pipedrive: the API base (default https://api.hubapi.com, https://api.pipedrive.com) */
  url: string;
  /** the sealed secret with the token (HubSpot private app token, Pipedrive API token, webhook HMAC key) */
  secret?: string;
  /** pipedrive: the key (40 hex) of the organization custom field that holds the domain (required there) */
  domainField?: string;
}

/** one lead's delivery to one target, in the durable outbox */
export interface Delivery {
  /** `<target>/<lead id>` */
  key: string;
  target: string;
  leadId: string;
  version: string;
  state: 'pending' | 'sent' | 'failed';
  attempts: number;
  nextAt: number;
  createdAt: number;
  sentAt?: number;
  /** the CRM's id for the record (created or updated) */
  crmId?: string;
  action?: 'created' | 'updated';
  lastError?: string;
}
