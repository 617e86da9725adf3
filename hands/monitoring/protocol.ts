/**
 * The Monitoring Hand's typed requests (hands/sdk/surface.ts): one schema for the request and
 * one for the answer per kind; the types the Hand's handlers (./index.ts) and its routes
 * (./surface.ts) use are derived from them. The kernel validates every request against its
 * schema before the Hand sees it, so the handlers check only what a schema cannot say (is the
 * sensor watched, is the alert active).
 *
 * Pure data: imported by the kernel (through ./surface.ts) and by the Hand's worker.
 */
import { defineProtocol, type FromSchema } from '../sdk/index.ts';

const ACK = {
  type: 'object',
  additionalProperties: false,
  required: ['by', 'at'],
  properties: { by: { type: 'string' }, at: { type: 'number' }, note: { type: 'string' } },
} as const;

/** one alert event (./alerts.ts Alert) */
export const ALERT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'sensor', 'rule', 'severity', 'state', 'value', 'message', 'suggestedFix', 'since', 'ts'],
  properties: {
    id: { type: 'string' },
    sensor: { type: 'string' },
    rule: { type: 'string' },
    severity: { type: 'string', enum: ['info', 'warning', 'critical'] },
    state: { type: 'string', enum: ['firing', 'resolved', 'flapping'] },
    value: { type: ['number', 'null'] },
    message: { type: 'string' },
    suggestedFix: { type: 'string' },
    since: { type: 'number' },
    ts: { type: 'number' },
    acknowledged: ACK,
    resolvedBy: ACK,
  },
} as const;
export type AlertEvent = FromSchema<typeof ALERT_SCHEMA>;

const NONE = { type: 'object', additionalProperties: false, properties: {} } as const;
const ALERTS = {
  type: 'object',
  additionalProperties: false,
  required: ['alerts'],
  properties: { alerts: { type: 'array', items: ALERT_SCHEMA } },
} as const;
const ONE_ALERT = {
  type: 'object',
  additionalProperties: false,
  required: ['alert'],
  properties: { alert: ALERT_SCHEMA },
} as const;
/** 1-200 printable characters */
const TEXT_ID = { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f]+$' } as const;
/** ms epoch */
const MS = { type: 'number', minimum: 0, maximum: 1e15 } as const;
const CHANGE = {
  type: 'object',
  additionalProperties: false,
  required: ['alertId', 'by'],
  properties: { alertId: TEXT_ID, by: TEXT_ID, note: { type: 'string', maxLength: 1000 } },
} as const;

export const protocol = defineProtocol({
  status: {
    summary: "the Hand's counters and configuration problems",
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['status'],
      properties: { status: { type: 'object' } },
    },
  },
  sensors: {
    summary: 'the watched sensors, their latest values and failures',
    request: NONE,
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['sensors'],
      properties: {
        sensors: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'name', 'kind', 'intervalMs', 'last', 'lastTs', 'holding', 'failures'],
            properties: {
              id: { type: 'string' },
              name: { type: 'string' },
              unit: { type: 'string' },
              kind: { type: 'string' },
              intervalMs: { type: 'number' },
              last: { type: ['number', 'null'] },
              lastTs: { type: ['number', 'null'] },
              holding: { type: 'array', items: { type: 'string' } },
              failures: { type: 'number' },
            },
          },
        },
      },
    },
  },
  active: {
    summary: 'the alerts firing now',
    request: NONE,
    answer: ALERTS,
  },
  alerts: {
    summary: 'the alert history, newest first, by sensor and time range',
    request: {
      type: 'object',
      additionalProperties: false,
      properties: {
        sensor: { type: 'string', maxLength: 128 },
        from: MS,
        to: MS,
        limit: { type: 'integer', minimum: 1, maximum: 5000 },
      },
    },
    answer: ALERTS,
  },
  history: {
    summary: "a watched sensor's readings over a range, downsampled",
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['sensor'],
      properties: {
        sensor: { type: 'string', maxLength: 128 },
        from: MS,
        to: MS,
        resolution: { type: 'string', enum: ['auto', 'raw', '1m', '1h'] },
        maxPoints: { type: 'integer', minimum: 1, maximum: 5000 },
      },
    },
    answer: {
      type: 'object',
      additionalProperties: false,
      required: ['sensor', 'from', 'to', 'resolution', 'points'],
      properties: {
        sensor: { type: 'string' },
        from: { type: 'number' },
        to: { type: 'number' },
        resolution: { type: 'string', enum: ['raw', '1m', '1h'] },
        points: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['t', 'min', 'max', 'avg', 'n'],
            properties: {
              t: { type: 'number' },
              min: { type: 'number' },
              max: { type: 'number' },
              avg: { type: 'number' },
              n: { type: 'number' },
            },
          },
        },
      },
    },
  },
  ack: {
    summary: 'acknowledge an active alert (it keeps firing until its condition clears)',
    request: CHANGE,
    answer: ONE_ALERT,
  },
  resolve: {
    summary: 'resolve an active alert by hand',
    request: CHANGE,
    answer: ONE_ALERT,
  },
});

export type MonitoringProtocol = typeof protocol;
