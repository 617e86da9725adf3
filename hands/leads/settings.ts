/**
 * The Lead Generation Hand's settings (`hands: [{ name: leads, module: leads, settings: {…} }]`):
 *
 *   criteria     the ideal customer profile: industries, locations, size { min, max } (employees), keywords,
 *                technologies, exclude { domains, keywords, industries } (./score.ts scores against it)
 *   sources      where leads come from (./sources.ts parseLeadSource): list pages (CSS selectors or the model), CSV/JSON
 *                imports, feeds, search
 *   threshold    the score (0-100) from which a lead is qualified and routed to the CRMs (default 60)
 *   crm          CRM targets (./crm/index.ts parseCrmTarget): webhook, HubSpot, Pipedrive; tokens as sealed secrets
 *   schedule     a cron expression: a Scheduling Hand job `leads-<name>-scan` asks for a scan (the Hand's own timer
 *                when no scheduler answers)
 *   scheduler    the Scheduling Hand's name (default `scheduler`; null: always the Hand's own timer)
 *   enrich       { enabled (true), maxPerScan (50), refreshDays (30) }: the company's own site and MX records
 *   useModel     { extract, judge }: the model reads list pages / judges leads (only with an llm grant)
 *   userAgent, politenessMs, timeoutMs, maxPageBytes: the web kit's Fetcher (robots.txt is always respected)
 *   importDir    the folder relative `import` paths are read from (the Hand's fs grant must cover it)
 *
 * The schema checks the outline only; sources and CRM targets are checked one by one by their parsers, and what is
 * wrong is named by field (`sources[2].url: must be an http(s) URL`): that source or target is left out and logged, the
 * Hand starts with the rest.
 */
import { Cron } from 'croner';
import type { FromSchema } from '../sdk/index.ts';
import type { FetcherOptions } from '../sdk/web/types.ts';
import { HAND_NAME_PATTERN } from '../../runtime/core/names.ts';
import { parseCrmTarget } from './crm/index.ts';
import { parseLeadSource } from './sources.ts';
import type { CrmTarget, Criteria, LeadSource } from './types.ts';

const WORDS = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 500 } as const;

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    criteria: {
      type: 'object',
      additionalProperties: false,
      description: 'the ideal customer profile',
      properties: {
        industries: WORDS,
        locations: WORDS,
        size: {
          type: 'object',
          additionalProperties: false,
          properties: { min: { type: 'integer', minimum: 0 }, max: { type: 'integer', minimum: 0 } },
        },
        keywords: WORDS,
        technologies: WORDS,
        exclude: {
          type: 'object',
          additionalProperties: false,
          properties: { domains: WORDS, keywords: WORDS, industries: WORDS },
        },
      },
    },
    sources: {
      type: 'array',
      maxItems: 200,
      description: 'list pages, imports, feeds, searches (each checked by its own parser)',
      items: {},
      default: [],
    },
    threshold: { type: 'number', minimum: 0, maximum: 100, default: 60 },
    crm: { type: 'array', maxItems: 20, items: {}, default: [], description: 'webhook, hubspot or pipedrive targets' },
    schedule: { type: 'string', minLength: 1, maxLength: 256, description: 'cron: when a scan runs' },
    scheduler: { type: ['string', 'null'], description: "the Scheduling Hand's name (null: the Hand's own timer)" },
    enrich: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        maxPerScan: { type: 'integer', minimum: 0, maximum: 10_000, default: 50 },
        refreshDays: { type: 'number', minimum: 0, maximum: 3650, default: 30 },
      },
    },
    useModel: {
      type: 'object',
      additionalProperties: false,
      properties: { extract: { type: 'boolean' }, judge: { type: 'boolean' } },
    },
    userAgent: { type: 'string', minLength: 1, maxLength: 300 },
    politenessMs: { type: 'integer', minimum: 0, maximum: 60_000 },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 300_000 },
    maxPageBytes: { type: 'integer', minimum: 1024, maximum: 100 * 1024 * 1024 },
    importDir: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

export type LeadsSettings = FromSchema<typeof settingsSchema>;

export const DEFAULT_THRESHOLD = 60;
export const DEFAULT_MAX_PER_SCAN = 50;
export const DEFAULT_REFRESH_DAYS = 30;

export interface ParsedSettings {
  criteria: Criteria;
  sources: LeadSource[];
  threshold: number;
  crm: CrmTarget[];
  /** a valid cron expression, or undefined (no scheduled scans) */
  schedule?: string;
  scheduler: string | null;
  enrich: { enabled: boolean; maxPerScan: number; refreshDays: number };
  /** what the model is used for: false when asked for without an llm grant (named in `problems`) */
  useModel: { extract: boolean; judge: boolean };
  fetcher: FetcherOptions;
  importDir?: string;
  /** what is wrong, by field; the Hand starts with the rest */
  problems: string[];
}

const obj = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

function words(v: unknown, where: string, problems: string[]): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.push(`${where}: must be a list of words (["robotics", "automation"])`);
    return [];
  }
  const out: string[] = [];
  for (const [i, w] of v.entries()) {
    if (typeof w === 'string' && w.trim() !== '') out.push(w.trim());
    else problems.push(`${where}[${i}]: must be a non-empty string`);
  }
  return out;
}

/** the criteria with every list present (absent lists are empty) */
export function parseCriteria(raw: unknown, problems: string[]): Criteria {
  const c = obj(raw);
  const ex = obj(c.exclude);
  const criteria: Criteria = {
    industries: words(c.industries, 'criteria.industries', problems),
    locations: words(c.locations, 'criteria.locations', problems),
    keywords: words(c.keywords, 'criteria.keywords', problems),
    technologies: words(c.technologies, 'criteria.technologies', problems),
    exclude: {
      domains: words(ex.domains, 'criteria.exclude.domains', problems),
      keywords: words(ex.keywords, 'criteria.exclude.keywords', problems),
      industries: words(ex.industries, 'criteria.exclude.industries', problems),
    },
  };
  const size = obj(c.size);
  const min = typeof size.min === 'number' ? size.min : undefined;
  const max = typeof size.max === 'number' ? size.max : undefined;
  if (min !== undefined && max !== undefined && min > max)
    problems.push(`criteria.size: min (${min}) is more than max (${max}); the size is not scored`);
  else if (min !== undefined || max !== undefined)
    criteria.size = { ...(min !== undefined && { min }), ...(max !== undefined && { max }) };
  return criteria;
}

/** is `expr` a cron expression croner reads? the message when not */
export function cronProblem(expr: string): string | undefined {
  try {
    const c = new Cron(expr, { paused: true });
    c.stop();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * The settings, defaults filled in, sources and CRM targets parsed one by one; what is wrong is named by field in
 * `problems` and left out. `grants.llm`: whether the Hand may use the model (useModel needs it).
 */
export function parseSettings(raw: unknown, grants: { llm: boolean } = { llm: false }): ParsedSettings {
  const s = obj(raw);
  const problems: string[] = [];
  const out: ParsedSettings = {
    criteria: parseCriteria(s.criteria, problems),
    sources: [],
    threshold: DEFAULT_THRESHOLD,
    crm: [],
    scheduler: 'scheduler',
    enrich: { enabled: true, maxPerScan: DEFAULT_MAX_PER_SCAN, refreshDays: DEFAULT_REFRESH_DAYS },
    useModel: { extract: false, judge: false },
    fetcher: {},
    problems,
  };
  const names = new Set<string>();
  for (const [i, r] of (Array.isArray(s.sources) ? s.sources : []).entries()) {
    const src = parseLeadSource(r, `sources[${i}]`);
    if (typeof src === 'string') problems.push(`${src}; this source is left out`);
    else if (names.has(src.name))
      problems.push(`sources[${i}].name: "${src.name}" is used twice; give each source its own name`);
    else {
      names.add(src.name);
      out.sources.push(src);
    }
  }
  if (s.threshold !== undefined) {
    if (typeof s.threshold === 'number' && s.threshold >= 0 && s.threshold <= 100) out.threshold = s.threshold;
    else problems.push(`threshold: must be a number from 0 to 100 (default ${DEFAULT_THRESHOLD})`);
  }
  const targets = new Set<string>();
  for (const [i, r] of (Array.isArray(s.crm) ? s.crm : []).entries()) {
    const t = parseCrmTarget(r, `crm[${i}]`);
    if (typeof t === 'string') problems.push(`${t}; this CRM target is left out`);
    else if (targets.has(t.name))
      problems.push(`crm[${i}].name: "${t.name}" is used twice; give each CRM target its own name`);
    else {
      targets.add(t.name);
      out.crm.push(t);
    }
  }
  if (typeof s.schedule === 'string') {
    const p = cronProblem(s.schedule);
    if (p)
      problems.push(
        `schedule: "${s.schedule}" is not a cron expression (${p}); write five fields, e.g. "0 6 * * 1-5"; no scheduled scans`,
      );
    else out.schedule = s.schedule;
  }
  if (s.scheduler === null) out.scheduler = null;
  else if (typeof s.scheduler === 'string') {
    if (new RegExp(HAND_NAME_PATTERN).test(s.scheduler)) out.scheduler = s.scheduler;
    else problems.push(`scheduler: "${s.scheduler}" is not a Hand name (lowercase letters, digits, -)`);
  }
  const e = obj(s.enrich);
  if (typeof e.enabled === 'boolean') out.enrich.enabled = e.enabled;
  if (typeof e.maxPerScan === 'number') out.enrich.maxPerScan = Math.max(0, Math.floor(e.maxPerScan));
  if (typeof e.refreshDays === 'number') out.enrich.refreshDays = Math.max(0, e.refreshDays);
  const m = obj(s.useModel);
  const wants = { extract: m.extract === true, judge: m.judge === true };
  if ((wants.extract || wants.judge) && !grants.llm)
    problems.push(
      "useModel: the model needs an llm grant (capabilities: { llm: { tokensPerHour: … } } in the Hand's config); leads are read by selectors and scored by the rules alone",
    );
  else out.useModel = wants;
  const extractWithoutModel = out.sources.find(
    (x) => x.kind === 'list' && x.extract === 'model' && !out.useModel.extract,
  );
  if (extractWithoutModel)
    problems.push(
      `sources.${extractWithoutModel.name}: extract: model needs useModel.extract: true and an llm grant; the source finds nothing without selectors`,
    );
  if (typeof s.userAgent === 'string') out.fetcher.userAgent = s.userAgent;
  if (typeof s.politenessMs === 'number') out.fetcher.minIntervalMs = s.politenessMs;
  if (typeof s.timeoutMs === 'number') out.fetcher.timeoutMs = s.timeoutMs;
  if (typeof s.maxPageBytes === 'number') out.fetcher.maxBytes = s.maxPageBytes;
  if (typeof s.importDir === 'string') out.importDir = s.importDir;
  return out;
}
