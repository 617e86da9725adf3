/**
 * The Scheduling Hand's settings (`hands: [{ module: scheduling, settings: { jobs: [...] } }]`): the config's jobs
 * (versioned with the config; each checked by the engine at start, a bad one logged with its field and left out)
 * and how many runs each job keeps.
 *
 * Each job's own shape is JOB_SCHEMA (./types.ts); here the list is only an array of objects, so a mistake in one
 * job is reported by the engine in words (`jobs[2].trigger.cron: …`) rather than refusing the whole config with a
 * oneOf's branches.
 */
import { HISTORY_PER_JOB, MAX_JOBS } from './types.ts';
import type { FromSchema } from '../sdk/index.ts';

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    jobs: {
      type: 'array',
      maxItems: MAX_JOBS,
      default: [],
      description: 'jobs from the config: { id, trigger, action, policy?, paused?, description? } (JOB_SCHEMA)',
      items: { type: 'object' },
    },
    historyPerJob: {
      type: 'integer',
      minimum: 1,
      maximum: 10_000,
      default: HISTORY_PER_JOB,
      description: 'run records kept per job (the oldest go first)',
    },
  },
} as const;

export type SchedulingSettings = FromSchema<typeof settingsSchema>;

export interface ParsedSettings {
  jobs: unknown[];
  historyPerJob: number;
  problems: string[];
}

/** the settings with defaults; what is wrong is named and left out (the Hand starts with the rest) */
export function parseSettings(raw: unknown): ParsedSettings {
  const out: ParsedSettings = { jobs: [], historyPerJob: HISTORY_PER_JOB, problems: [] };
  if (raw === undefined || raw === null) return out;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    out.problems.push('settings: must be an object { jobs?, historyPerJob? }');
    return out;
  }
  const s = raw as Record<string, unknown>;
  for (const k of Object.keys(s))
    if (k !== 'jobs' && k !== 'historyPerJob') out.problems.push(`settings.${k}: is not a known field`);
  if (s.jobs !== undefined) {
    if (!Array.isArray(s.jobs)) out.problems.push('settings.jobs: must be a list of jobs');
    else {
      s.jobs.forEach((j, i) => {
        if (typeof j === 'object' && j !== null && !Array.isArray(j)) out.jobs.push(j);
        else out.problems.push(`settings.jobs[${i}]: must be a job object { id, trigger, action }`);
      });
      if (out.jobs.length > MAX_JOBS) {
        out.problems.push(`settings.jobs: at most ${MAX_JOBS} jobs; the rest are left out`);
        out.jobs.length = MAX_JOBS;
      }
    }
  }
  if (s.historyPerJob !== undefined) {
    const n = s.historyPerJob;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 10_000) out.historyPerJob = n;
    else out.problems.push(`settings.historyPerJob: must be a whole number from 1 to 10000, not ${JSON.stringify(n)}`);
  }
  return out;
}
