/**
 * The Lead Generation Hand's CRM clients: one `deliver(lead)` per target kind — a generic signed webhook
 * (./webhook.ts), HubSpot's CRM v3 companies (./hubspot.ts) and Pipedrive's v1 organizations (./pipedrive.ts), both
 * create-or-update by the company's domain — and the settings' shorthand for a target (parseCrmTarget).
 *
 * Every failure is a CrmError saying whether trying again can help: 401/403 (the token), other 4xx (the request) and a
 * host the network grant refuses are not retryable; 429 is (with the CRM's wait when it says one), and so are 408, 5xx,
 * a network failure and a 2xx that is not JSON. The outbox (../outbox.ts) turns that into backoff or `failed`.
 *
 * Idempotency: the outbox may send a lead twice when the Hand stops between the CRM's answer and the outbox's write.
 * HubSpot and Pipedrive look the company up by domain first (so the second send is an update), the webhook carries an
 * `Idempotency-Key: <lead id>:<version>` the receiver can dedupe on.
 */
import type { HandContext } from '../../sdk/types.ts';
import { SECRET_NAME } from '../../../runtime/core/names.ts';
import type { CrmKind, CrmTarget, Lead } from '../types.ts';
import { hubspotClient } from './hubspot.ts';
import { pipedriveClient } from './pipedrive.ts';
import { webhookClient } from './webhook.ts';
import { readAnswer, retryAfterMs } from '../../sdk/http.ts';

export interface CrmEnv {
  fetch: HandContext['fetch'];
  /** a sealed secret's value by name (ctx.call('secrets.get', name) or the Hand's settings' resolved secrets) */
  secret(name: string): Promise<string | undefined>;
  now: () => number;
}

export class CrmError extends Error {
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  /** the HTTP status, when the CRM answered */
  readonly status?: number;

  constructor(message: string, opts: { retryable: boolean; retryAfterMs?: number; status?: number; cause?: unknown }) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'CrmError';
    this.retryable = opts.retryable;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
    if (opts.status !== undefined) this.status = opts.status;
  }
}

export interface CrmClient {
  deliver(lead: Lead): Promise<{ crmId: string; action: 'created' | 'updated' }>;
}

export const HUBSPOT_API = 'https://api.hubapi.com';
export const PIPEDRIVE_API = 'https://api.pipedrive.com';
const KINDS: readonly CrmKind[] = ['webhook', 'hubspot', 'pipedrive'];
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const DOMAIN_FIELD = /^[0-9a-f]{40}$/;
const TOKEN_OF: Record<CrmKind, string> = { webhook: 'HMAC key', hubspot: 'private app token', pipedrive: 'API token' };
/** a request to a CRM that takes longer is given up (and retried) */
export const CRM_TIMEOUT_MS = 30_000;

export function crmClient(target: CrmTarget, env: CrmEnv): CrmClient {
  switch (target.kind) {
    case 'webhook':
      return webhookClient(target, env);
    case 'hubspot':
      return hubspotClient(target, env);
    case 'pipedrive':
      return pipedriveClient(target, env);
    default:
      throw new Error(
        `CRM target ${target.name}: kind ${JSON.stringify(target.kind)} is not one of ${KINDS.join(', ')}`,
      );
  }
}

/** the settings' shorthand → a CrmTarget (API bases defaulted), or a message naming the field */
export function parseCrmTarget(raw: unknown, where: string): CrmTarget | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return `${where}: must be an object { name, kind: webhook|hubspot|pipedrive, url?, secret?, domainField? }`;
  const r = raw as Record<string, unknown>;
  const known = new Set(['name', 'kind', 'url', 'secret', 'domainField']);
  const extra = Object.keys(r).find((k) => !known.has(k));
  if (extra !== undefined) return `${where}.${extra}: unknown field (use name, kind, url, secret, domainField)`;
  if (typeof r.name !== 'string' || !NAME.test(r.name))
    return (
      `${where}.name: must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit ` +
      '(e.g. "hubspot")'
    );
  if (typeof r.kind !== 'string' || !KINDS.includes(r.kind as CrmKind))
    return `${where}.kind: must be one of ${KINDS.join(', ')}`;
  const kind = r.kind as CrmKind;
  if (r.secret !== undefined && (typeof r.secret !== 'string' || !SECRET_NAME.test(r.secret)))
    return (
      `${where}.secret: must be the name of a sealed secret (1-64 letters, digits, ".", "_" or "-"; ` +
      'set it with `talon secrets set NAME`)'
    );
  let url: string;
  if (r.url === undefined) {
    if (kind === 'webhook')
      return `${where}.url: a webhook target needs the URL to POST leads to (http:// or https://)`;
    url = kind === 'hubspot' ? HUBSPOT_API : PIPEDRIVE_API;
  } else {
    if (typeof r.url !== 'string') return `${where}.url: must be an http(s) URL`;
    let u: URL;
    try {
      u = new URL(r.url);
    } catch {
      return `${where}.url: ${JSON.stringify(r.url)} is not a URL (write e.g. https://crm.example.com/hooks/leads)`;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${where}.url: must be an http(s) URL`;
    if (u.username !== '' || u.password !== '')
      return `${where}.url: no credentials in the URL (put the token into a sealed secret, name it in ${where}.secret)`;
    url = kind === 'webhook' ? u.href : u.href.replace(/\/+$/, '');
  }
  if (kind !== 'webhook' && r.secret === undefined)
    return `${where}.secret: a ${kind} target needs the name of the sealed secret with its ${TOKEN_OF[kind]}`;
  if (r.domainField !== undefined && kind !== 'pipedrive')
    return `${where}.domainField: only a pipedrive target has one (remove it)`;
  if (kind === 'pipedrive' && (typeof r.domainField !== 'string' || !DOMAIN_FIELD.test(r.domainField)))
    return (
      `${where}.domainField: a pipedrive target needs the 40-hex key of the organization custom field that holds ` +
      "the domain (Pipedrive: Settings → Data fields → Organization → the field's API key)"
    );
  return {
    name: r.name,
    kind,
    url,
    ...(typeof r.secret === 'string' && { secret: r.secret }),
    ...(kind === 'pipedrive' && { domainField: r.domainField as string }),
  };
}

// ---- what the clients share ----

/**
 * what an error answer says, in words: HubSpot's `message`, Pipedrive's `error` (with `error_info`), else the body's
 * text — not the whole JSON, which a person would have to read through
 */
function errorDetail(json: unknown, isJson: boolean, text: string): string {
  if (isJson && typeof json === 'object' && json !== null) {
    const j = json as Record<string, unknown>;
    const said = [j.message, j.error, j.error_info].filter((v): v is string => typeof v === 'string' && v !== '');
    if (said.length > 0) return [...new Set(said)].join(' — ');
  }
  return text;
}

/** a status that is not 2xx as a CrmError (the body, cut, says why) */
export function statusError(crm: string, status: number, detail: string, wait?: number): CrmError {
  const why = detail ? `: ${detail.slice(0, 200)}` : '';
  if (status === 401 || status === 403)
    return new CrmError(`${crm} refused the credentials (${status})${why}; check the target's secret`, {
      retryable: false,
      status,
    });
  if (status === 429)
    return new CrmError(`${crm} asks to slow down (429)${why}`, {
      retryable: true,
      status,
      ...(wait !== undefined && { retryAfterMs: wait }),
    });
  if (status === 408 || status >= 500)
    return new CrmError(`${crm} failed (${status})${why}`, {
      retryable: true,
      status,
      ...(wait !== undefined && { retryAfterMs: wait }),
    });
  return new CrmError(`${crm} refused the request (${status})${why}`, { retryable: false, status });
}

export interface CrmCall {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH';
  headers?: Record<string, string>;
  json?: unknown;
  /** the exact body to send (the webhook signs these bytes) */
  raw?: string;
  /** the CRM's own wait when Retry-After is absent (Pipedrive's x-ratelimit-reset), in ms */
  waitOf?: (h: Headers) => number | undefined;
  /** a 2xx with a body that is not JSON is success too (a generic webhook), its body undefined */
  anyBody?: boolean;
}

/** one request: the parsed JSON of a 2xx (undefined for an empty body), or a CrmError */
export async function crmCall(
  env: CrmEnv,
  crm: string,
  url: string,
  c: CrmCall = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'talon-leads', ...c.headers };
  let body: string | undefined;
  if (c.raw !== undefined) body = c.raw;
  else if (c.json !== undefined) body = JSON.stringify(c.json);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  let res: Response;
  try {
    res = await env.fetch(url, {
      method: c.method ?? (body !== undefined ? 'POST' : 'GET'),
      headers,
      ...(body !== undefined && { body }),
      timeoutMs: CRM_TIMEOUT_MS,
    });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    // a host outside the grant is configuration, not weather
    const denied = e.code === 'CAPABILITY_DENIED';
    throw new CrmError(
      `${crm}: ${e.message ?? String(err)}${denied ? ' (add the host to the Hand\u2019s network grant)' : ''}`,
      { retryable: !denied, cause: err },
    );
  }
  const { text, json: parsed, isJson: parsedOk } = await readAnswer(res);
  if (!res.ok) {
    const wait = retryAfterMs(res.headers.get('retry-after'), env.now()) ?? c.waitOf?.(res.headers);
    throw statusError(crm, res.status, errorDetail(parsed, parsedOk, text), wait);
  }
  if (text !== '' && !parsedOk && !c.anyBody)
    throw new CrmError(
      `${crm} answered ${res.status} with something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
      {
        retryable: true,
        status: res.status,
      },
    );
  return { status: res.status, body: parsed, headers: res.headers };
}

/** the target's token from its sealed secret, or a CrmError a person can act on */
export async function tokenOf(target: CrmTarget, env: CrmEnv): Promise<string> {
  if (target.secret === undefined)
    throw new CrmError(`CRM target ${target.name}: no secret named (set the target's \`secret\`)`, {
      retryable: false,
    });
  const v = await env.secret(target.secret);
  if (v === undefined || v === '')
    throw new CrmError(
      `CRM target ${target.name}: the sealed secret ${target.secret} is not set ` +
        `(\`talon secrets set ${target.secret}\`)`,
      { retryable: false },
    );
  return v;
}

/** the lines a CRM record's description/note carries besides the structured fields */
export function leadSummary(lead: Lead): string {
  const lines: string[] = [];
  if (lead.description?.value) lines.push(lead.description.value);
  if (lead.industry?.value) lines.push(`Industry: ${lead.industry.value}`);
  if (lead.emails.length > 0) lines.push(`E-mail: ${lead.emails.map((e) => e.value).join(', ')}`);
  if (lead.contact?.value)
    lines.push(`Contact: ${lead.contact.value}${lead.title?.value ? ` (${lead.title.value})` : ''}`);
  if (lead.technologies.length > 0) lines.push(`Technologies: ${lead.technologies.map((t) => t.value).join(', ')}`);
  lines.push(`Talon score: ${lead.score}/100${lead.reasons.length > 0 ? ` (${lead.reasons.join('; ')})` : ''}`);
  if (lead.model?.reason) lines.push(`Model: ${lead.model.reason}`);
  return lines.join('\n');
}

/** the lead's domain (a company record's key), or a CrmError: an e-mail-only lead has no company to file */
export function domainOf(crm: string, lead: Lead): string {
  if (lead.domain) return lead.domain;
  if (lead.id.startsWith('d:')) return lead.id.slice(2);
  throw new CrmError(`${crm}: lead ${lead.id} has no company domain to file it under`, { retryable: false });
}
