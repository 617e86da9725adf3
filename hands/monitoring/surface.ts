/**
 * What the Monitoring Hand adds to the device (hands/sdk/surface.ts), served by the kernel
 * generically: its typed requests (./protocol.ts), the alert and sensor-history routes under
 * the `alerts` and `sensors` areas (the paths the page and API clients have always used),
 * `talon monitoring replay`, its /metrics series, its Home Assistant alert entities and its page.
 *
 * Loaded by the kernel and the CLI at start: keep it light. The replay engine is imported by
 * the command when it runs (./cli.ts).
 */
import { defineSurface, routeOf, type HandSurface, type JSONSchema } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { SENSOR_ID_PATTERN } from '../../runtime/core/names.ts';
import { topics } from '../../runtime/core/topics.ts';
import { protocol, type MonitoringProtocol } from './protocol.ts';
import { SEVERITIES } from './settings.ts';

/** the longest range the history and alert routes accept */
export const MAX_RANGE_MS = 400 * 86_400_000;

function checkRange(from: number | undefined, to: number | undefined): void {
  if (from !== undefined && to !== undefined) {
    if (from > to) throw new TalonError('BAD_REQUEST', `from (${from}) must not be after to (${to})`);
    if (to - from > MAX_RANGE_MS)
      throw new TalonError(
        'BAD_REQUEST',
        `the range is ${Math.round((to - from) / 86_400_000)} days; at most ${MAX_RANGE_MS / 86_400_000} days at once`,
      );
  }
}

// -- the routes' schemas: as the web admin has always declared them (open objects: more fields may come)
const str = (maxLength = 200) => ({ type: 'string', maxLength }) as const;
const num = { type: 'number' } as const;
const SENSOR_ID = { type: 'string', pattern: SENSOR_ID_PATTERN } as const;
const ms = { type: 'integer', minimum: 0, maximum: 1e15 } as const;
const ACK = {
  type: 'object',
  additionalProperties: false,
  required: ['by', 'at'],
  properties: { by: str(), at: num, note: str(1000) },
} as const;
const ALERT = {
  type: 'object',
  required: ['id', 'sensor', 'rule', 'severity', 'state', 'ts'],
  properties: {
    id: str(),
    sensor: str(),
    rule: str(),
    severity: str(),
    state: str(),
    message: { type: 'string' },
    value: { type: ['number', 'null'] },
    ts: num,
    since: num,
    suggestedFix: { type: 'string' },
    acknowledged: ACK,
    resolvedBy: ACK,
  },
} as const;
const ALERT_ID = {
  type: 'string',
  minLength: 1,
  maxLength: 200,
  pattern: '^[^/\\\\\\s]+$',
  description: 'as the alert has it: no slashes or spaces',
} as const;
const NOTE = { type: 'object', additionalProperties: false, required: [], properties: { note: str(1000) } } as const;
const ALERT_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: ALERT_ID },
} as const;
const SENSOR_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: SENSOR_ID },
} as const;
const HISTORY: JSONSchema = {
  type: 'object',
  required: ['sensor', 'from', 'to', 'points'],
  properties: {
    sensor: str(),
    from: num,
    to: num,
    resolution: str(),
    points: { type: 'array', items: { anyOf: [{ type: 'array' }, { type: 'object' }] } },
  },
};

/** a route of this Hand: its handler's query and body typed from the route's schemas, `request` from the protocol */
const route = routeOf<MonitoringProtocol>();

// typed by annotation, not inferred: the contextual types of the handlers come from the protocol at once
const surface: HandSurface<MonitoringProtocol> = {
  id: 'monitoring',
  title: 'Monitoring',
  provides: 'sensor history and alerts',
  protocol,
  routes: [
    route({
      method: 'GET',
      path: '/api/v1/alerts',
      operationId: 'listAlerts',
      summary: 'Alerts: the active ones (default), or the history filtered by sensor and time range',
      tag: 'alerts',
      access: 'read',
      query: {
        type: 'object',
        additionalProperties: false,
        required: [],
        properties: {
          state: { type: 'string', enum: ['active', 'all'], default: 'active' },
          sensor: SENSOR_ID,
          from: ms,
          to: ms,
          limit: { type: 'integer', minimum: 1, maximum: 5000, default: 200 },
        },
      },
      responses: {
        200: {
          description: 'alerts, newest first',
          schema: {
            type: 'object',
            additionalProperties: false,
            required: ['alerts'],
            properties: { alerts: { type: 'array', items: ALERT } },
          },
        },
      },
      handler: async ({ query, request }) => {
        const q = query;
        checkRange(q.from, q.to);
        const limit = q.limit ?? 200;
        if ((q.state ?? 'active') === 'active') {
          const { alerts } = await request('active', {});
          return { alerts: (q.sensor ? alerts.filter((a) => a.sensor === q.sensor) : alerts).slice(0, limit) };
        }
        const { alerts } = await request('alerts', {
          ...(q.sensor !== undefined ? { sensor: q.sensor } : {}),
          ...(q.from !== undefined ? { from: q.from } : {}),
          ...(q.to !== undefined ? { to: q.to } : {}),
          limit,
        });
        return { alerts };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v1/alerts/stream',
      operationId: 'alertStream',
      summary: 'Server-sent events: one `alert` event per alert event (firing, resolved, flapping, acknowledged)',
      tag: 'alerts',
      access: 'read',
      responses: {
        200: { description: 'text/event-stream of alert events', contentType: 'text/event-stream', schema: ALERT },
      },
      // the bus carries the alerts whether or not the Hand runs now: the stream opens either way
      handler: async ({ follow, events }) => {
        let live: ReturnType<typeof events> | null = null;
        const off = await follow('alerts/#', (_topic, alert) => live?.send('alert', alert));
        live = events();
        live.onClose(off);
        return undefined;
      },
    }),
    ...(['ack', 'resolve'] as const).map((type) =>
      route({
        method: 'POST' as const,
        path: `/api/v1/alerts/{id}/${type}`,
        operationId: type === 'ack' ? 'ackAlert' : 'resolveAlert',
        summary:
          type === 'ack'
            ? 'Acknowledge an active alert (it keeps firing until its condition clears)'
            : 'Resolve an active alert by hand (it fires again after the cool-down if its condition still holds)',
        tag: 'alerts',
        access: 'write' as const,
        params: ALERT_PARAMS,
        body: NOTE,
        responses: {
          200: {
            description: type === 'ack' ? 'the alert, acknowledged' : 'the resolved alert event',
            schema: {
              type: 'object',
              additionalProperties: false,
              required: ['alert'],
              properties: { alert: ALERT },
            } as const,
          },
        },
        // audited with the caller before the Hand acts: api.alerts.ack / api.alerts.resolve
        handler: async ({ params, body, caller, audited, request }) => {
          const id = params.id!;
          const note = body.note;
          // refused before anything is audited, as the kernel always did
          if (/[\u0000-\u001f]/.test(id))
            throw new TalonError('BAD_REQUEST', 'an alert id is 1-200 printable characters');
          const r = await audited(
            { action: `api.alerts.${type}`, subject: id, ...(note ? { detail: { note } } : {}) },
            () => request(type, { alertId: id, by: caller.actor, ...(note ? { note } : {}) }),
          );
          return { alert: r.alert };
        },
      }),
    ),
    route({
      method: 'GET',
      path: '/api/v1/sensors/{id}/history',
      operationId: 'sensorHistory',
      summary: "A sensor's history over a range (default the last hour), downsampled by the Monitoring Hand",
      tag: 'sensors',
      access: 'read',
      params: SENSOR_PARAMS,
      query: {
        type: 'object',
        additionalProperties: false,
        required: [],
        properties: {
          from: ms,
          to: ms,
          resolution: { type: 'string', enum: ['auto', 'raw', '1m', '1h'], default: 'auto' },
          maxPoints: { type: 'integer', minimum: 1, maximum: 5000, default: 1000 },
        },
      },
      responses: {
        200: { description: 'points: [ts, value] (raw) or {ts, min, max, avg} (downsampled)', schema: HISTORY },
      },
      // ranges over MAX_RANGE_MS and from > to are refused before the Hand is asked (400 BAD_REQUEST)
      handler: async ({ params, query, request }) => {
        const q = query;
        const to = q.to ?? Date.now();
        const from = q.from ?? to - 3_600_000;
        checkRange(from, to);
        return request('history', {
          sensor: params.id!,
          from,
          to,
          resolution: q.resolution ?? 'auto',
          maxPoints: q.maxPoints ?? 1000,
        });
      },
    }),
  ],
  cli: {
    summary: "replay recorded sensor data through the Monitoring Hand's rules (no daemon needed)",
    description: 'Work with the Monitoring Hand offline.',
    commands: [
      {
        name: 'replay',
        summary: "replay recorded timestamp,value data through the Hand's rules and print the alerts it would raise",
        description:
          "Replay recorded readings of one sensor through the Monitoring Hand's detectors and rules, at the data's own time, and print the alerts it would have raised.",
        positionals: [
          {
            name: 'FILE',
            required: true,
            description:
              'CSV of timestamp,value rows (header optional; ISO 8601 / "YYYY-MM-DD hh:mm:ss" UTC, or epoch s / ms); - reads stdin',
          },
        ],
        options: {
          sensor: {
            type: 'string',
            value: 'ID',
            description:
              "the sensor id the data belongs to (required): picks the settings entry and the sensor kind's defaults",
          },
          unit: {
            type: 'string',
            value: 'UNIT',
            description: "the sensor's unit (%, °C, B/s, MB …), for the kind defaults",
          },
          settings: {
            type: 'string',
            value: 'FILE',
            description: "the Monitoring Hand's settings (JSON or YAML; default: an unconfigured Hand's defaults)",
          },
          json: {
            type: 'boolean',
            description: 'print {sensor, profile, samples, skipped, problems, events, onsets} as JSON',
          },
        },
        notes:
          "Exit 0 when replayed (alerts or not); 2 on a bad file or option. An unconfigured sensor gets the data's median spacing as its interval.",
        run: async (args) => (await import('./cli.ts')).replayCommand(args),
      },
    ],
  },
  metrics: {
    async collect({ request }) {
      const { alerts } = await request('active', {});
      const { status } = await request('status', {});
      const counters = (status.counters ?? {}) as Record<string, unknown>;
      const watched = typeof status.sensors === 'number' ? status.sensors : NaN;
      return [
        {
          name: 'talon_monitoring_alerts_active',
          type: 'gauge',
          help: 'Alerts firing now, by severity.',
          samples: SEVERITIES.map((severity) => ({
            labels: { severity },
            value: alerts.filter((a) => a.severity === severity).length,
          })),
        },
        {
          name: 'talon_monitoring_sensors_watched',
          type: 'gauge',
          help: 'Sensors the Monitoring Hand watches.',
          samples: [{ value: watched }],
        },
        {
          name: 'talon_monitoring_readings_total',
          type: 'counter',
          help: 'Readings scored by the Monitoring Hand.',
          samples: [{ value: typeof counters.readings === 'number' ? counters.readings : NaN }],
        },
      ];
    },
  },
  // one binary sensor per severity: on while an alert of it fires (its attributes: the alert)
  homeAssistant: {
    entities: ({ deviceId }) =>
      SEVERITIES.map((sev) => ({
        component: 'binary_sensor' as const,
        objectId: `alert_${sev}`,
        config: {
          name: `Talon ${sev} alert`,
          state_topic: topics.alerts(deviceId, sev),
          value_template: "{{ 'ON' if value_json.state in ['firing', 'flapping'] else 'OFF' }}",
          json_attributes_topic: topics.alerts(deviceId, sev),
          device_class: 'problem',
        },
      })),
  },
  page: { label: 'Monitoring' },
};

export default defineSurface(surface);
