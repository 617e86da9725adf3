/**
 * MQTT topic rules, cited from the MQTT 3.1.1 spec where they are enforced, and the
 * mapping between a Hand's relative topics and absolute ones under `talon/<deviceId>/`.
 */
import { TalonError } from './errors.ts';

export const MAX_TOPIC_BYTES = 65535;

/** A topic name a client publishes to: no wildcards [MQTT-3.3.2-2], not empty [MQTT-4.7.3-1], no NUL [MQTT-4.7.3-2]. */
export function validateTopic(topic: string): void {
  if (topic.length === 0) throw new TalonError('BUS_TOPIC_INVALID', 'topic is empty');
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES)
    throw new TalonError('BUS_TOPIC_INVALID', 'topic is longer than 65535 bytes');
  if (topic.includes('\u0000')) throw new TalonError('BUS_TOPIC_INVALID', `topic "${topic}" contains NUL`);
  if (topic.includes('+') || topic.includes('#')) {
    throw new TalonError(
      'BUS_TOPIC_INVALID',
      `topic "${topic}" contains a wildcard; wildcards are for subscriptions only`,
    );
  }
}

/** A topic filter: `#` only last and alone in its level [MQTT-4.7.1-2], `+` alone in its level [MQTT-4.7.1-3]. */
export function validateFilter(filter: string): void {
  if (filter.length === 0) throw new TalonError('BUS_TOPIC_INVALID', 'topic filter is empty');
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES)
    throw new TalonError('BUS_TOPIC_INVALID', 'topic filter is longer than 65535 bytes');
  if (filter.includes('\u0000')) throw new TalonError('BUS_TOPIC_INVALID', `topic filter "${filter}" contains NUL`);
  const levels = filter.split('/');
  levels.forEach((level, i) => {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      throw new TalonError('BUS_TOPIC_INVALID', `topic filter "${filter}": "#" must be a whole level and the last one`);
    }
    if (level.includes('+') && level !== '+') {
      throw new TalonError('BUS_TOPIC_INVALID', `topic filter "${filter}": "+" must be a whole level`);
    }
  });
}

/** Does `topic` match `filter`? Wildcards at the first level do not match `$` topics [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const fl = f[i];
    if (fl === '#') return true; // also matches the parent level [MQTT-4.7.1-2]
    if (i >= t.length) return false;
    if (fl !== '+' && fl !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Does the grant filter `grant` cover every topic the filter `filter` could match?
 * Used to decide whether a Hand may subscribe to `filter` under a grant.
 */
export function filterCovers(grant: string, filter: string): boolean {
  if (grant === filter) return true;
  if (filter.startsWith('$') && (grant.startsWith('+') || grant.startsWith('#'))) return false;
  const g = grant.split('/');
  const f = filter.split('/');
  for (let i = 0; i < g.length; i++) {
    const gl = g[i];
    if (gl === '#') return true;
    const fl = f[i];
    if (fl === undefined) return false;
    if (fl === '#') return false; // the filter reaches deeper than a non-# grant
    if (gl === '+') continue; // covers one level, literal or '+'
    if (fl === '+' || gl !== fl) return false;
  }
  return g.length === f.length;
}

/**
 * Hands address topics relative to their device root. A leading `/` means absolute from the
 * broker root (for `homeassistant/...` and the like): `/homeassistant/status`.
 */
export function toAbsolute(root: string, topic: string): string {
  return topic.startsWith('/') ? topic.slice(1) : `${root}/${topic}`;
}

export function toRelative(root: string, topic: string): string {
  return topic.startsWith(`${root}/`) ? topic.slice(root.length + 1) : `/${topic}`;
}

/**
 * Do two topic filters match at least one topic in common? (A subscription `#` overlaps the
 * public `talon/<id>/state`; `talon/<id>/cmd/#` overlaps none of the public filters.)
 */
export function filtersOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  // a first-level wildcard does not match `$` topics [MQTT-4.7.2-1]
  if (
    (a.startsWith('$') && (b.startsWith('+') || b.startsWith('#'))) ||
    (b.startsWith('$') && (a.startsWith('+') || a.startsWith('#')))
  )
    return false;
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    const xl = x[i];
    const yl = y[i];
    if (xl === '#' || yl === '#') return true; // `#` also matches the parent level [MQTT-4.7.1-2]
    if (xl === undefined || yl === undefined) return xl === yl;
    if (xl !== '+' && yl !== '+' && xl !== yl) return false;
  }
}

/** Topics (relative to `talon/<deviceId>/`) that only the kernel publishes; the embedded broker refuses them from clients. */
export const KERNEL_ONLY = ['state', 'hands/+/status', 'audit/head', 'sensors/#', 'approvals/#'] as const;

/**
 * The device's public state (relative to `talon/<deviceId>/`): what an anonymous client of the
 * embedded broker's local listener may read, and may not write. Everything else under the
 * device root (command replies, Hands' own topics) is not public.
 */
export const PUBLIC = ['state', 'hands/+/status', 'sensors/#', 'alerts/#', 'audit/head'] as const;

/**
 * A client id that can name a reply topic level: the embedded broker answers a command on
 * `talon/<id>/cmd/reply/<client id>/<request id>`, which only that client may read.
 */
export const REPLY_CLIENT_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The topic layout under `talon/<deviceId>/`. */
export const topics = {
  root: (deviceId: string) => `talon/${deviceId}`,
  state: (deviceId: string) => `talon/${deviceId}/state`,
  handStatus: (deviceId: string, hand: string) => `talon/${deviceId}/hands/${hand}/status`,
  command: (deviceId: string) => `talon/${deviceId}/cmd`,
  /** the replies to one client's commands: `talon/<id>/cmd/reply/<client id>/<request id>` */
  commandReply: (deviceId: string, clientId: string, requestId: string) =>
    `talon/${deviceId}/cmd/reply/${clientId}/${requestId}`,
  /** where a command's reply goes when the asker is not known (an external broker, no MQTT 5 response topic) */
  commandReplyLegacy: (deviceId: string, requestId: string) => `talon/${deviceId}/cmd/reply/${requestId}`,
  sensor: (deviceId: string, sensor: string) => `talon/${deviceId}/sensors/${sensor}`,
  alerts: (deviceId: string, severity: string) => `talon/${deviceId}/alerts/${severity}`,
  auditHead: (deviceId: string) => `talon/${deviceId}/audit/head`,
  /** a tool call waiting for a person, and then its answer (retained) */
  approval: (deviceId: string, approvalId: string) => `talon/${deviceId}/approvals/${approvalId}`,
};
