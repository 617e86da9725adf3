/** Alerts (from the Monitoring Hand): list, acknowledge, resolve, live events. */
import { defineRoutes, type Schema } from '../route.ts';
import { SENSOR_ID, int, ms, num, obj, open, params, str } from './schemas.ts';
import { openStream, type Live } from './live.ts';

const ACK: Schema = open({ by: str(), at: num, note: str(1000) }, ['by', 'at']);
export const ALERT: Schema = open({
  id: str(), sensor: str(), rule: str(), severity: str(), state: str(), message: { type: 'string' }, value: { type: ['number', 'null'] },
  ts: num, since: num, suggestedFix: { type: 'string' }, acknowledged: ACK, resolvedBy: ACK,
}, ['id', 'sensor', 'rule', 'severity', 'state', 'ts']);
const ALERT_ID: Schema = { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^/\\\\\\s]+$', description: 'as the alert has it: no slashes or spaces' };
const note = obj({ note: str(1000) }, ['note']);

export default defineRoutes([
  {
    method: 'GET', path: '/api/v1/alerts', operationId: 'listAlerts', summary: 'Alerts: the active ones (default), or the history filtered by sensor and time range', tag: 'alerts', access: 'read',
    query: obj({
      state: { type: 'string', enum: ['active', 'all'], default: 'active' }, sensor: SENSOR_ID, from: ms, to: ms, limit: int(1, 5000, { default: 200 }),
    }, ['state', 'sensor', 'from', 'to', 'limit']),
    responses: { 200: { description: 'alerts, newest first', schema: obj({ alerts: { type: 'array', items: ALERT } }) } },
    handler: async ({ api, caller, query }) => ({ alerts: await api.alerts.list(caller, query as { state?: 'active' | 'all'; sensor?: string; from?: number; to?: number; limit?: number }) }),
  },
  {
    method: 'GET', path: '/api/v1/alerts/stream', operationId: 'alertStream', summary: 'Server-sent events: one `alert` event per alert event (firing, resolved, flapping, acknowledged)', tag: 'alerts', access: 'read',
    responses: { 200: { description: 'text/event-stream of alert events', contentType: 'text/event-stream', schema: ALERT } },
    handler: async (ctx) => {
      let live: Live | null = null;
      const off = await ctx.api.alerts.follow(ctx.caller, (a) => live?.send('alert', a));
      live = openStream(ctx);
      live.onClose(off);
      return undefined;
    },
  },
  {
    method: 'POST', path: '/api/v1/alerts/{id}/ack', operationId: 'ackAlert', summary: 'Acknowledge an active alert (it keeps firing until its condition clears)', tag: 'alerts', access: 'write',
    params: params({ id: ALERT_ID }), body: note,
    responses: { 200: { description: 'the alert, acknowledged', schema: obj({ alert: ALERT }) } },
    handler: ({ api, caller, params: p, body }) => api.alerts.ack(caller, p.id!, (body as { note?: string }).note),
  },
  {
    method: 'POST', path: '/api/v1/alerts/{id}/resolve', operationId: 'resolveAlert', summary: 'Resolve an active alert by hand (it fires again after the cool-down if its condition still holds)', tag: 'alerts', access: 'write',
    params: params({ id: ALERT_ID }), body: note,
    responses: { 200: { description: 'the resolved alert event', schema: obj({ alert: ALERT }) } },
    handler: ({ api, caller, params: p, body }) => api.alerts.resolve(caller, p.id!, (body as { note?: string }).note),
  },
]);
