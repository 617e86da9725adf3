/**
 * What a Hand imports: `export default defineHand({ manifest, start(ctx), stop() })`, and for a
 * Hand with a surface (./surface.ts) its typed requests: `defineHand({ …, protocol, requests })`
 * with one handler per kind, each typed from the kind's schemas.
 * defineHand only checks the shape, so a mistake shows at load rather than at start; the
 * kernel validates the manifest against its schema (runtime/supervisor/manifest.ts).
 */
import type { HandDefinition } from './types.ts';
import type { Protocol, RequestHandlers } from './surface.ts';

export type * from './types.ts';
export type * from './surface.ts';
export { defineProtocol, defineSurface, routeOf } from './surface.ts';
// for Hands that run things on a schedule or on request: ./schedules.ts, ./inflight.ts
export {
  ScheduleSync,
  type CronConstructor,
  type ScheduledBy,
  type ScheduledJob,
  type ScheduleSyncOptions,
} from './schedules.ts';
export { InFlight } from './inflight.ts';

/** A Hand; with `protocol`, `requests` must answer each of its kinds (and nothing else). */
export type HandDefinitionOf<P extends Protocol> = Omit<HandDefinition, 'requests'> & {
  protocol?: P;
  requests?: NoInfer<RequestHandlers<P>>;
};

export function defineHand<const P extends Protocol = Record<never, never>>(hand: HandDefinitionOf<P>): HandDefinition {
  // checked untyped: the typed view of a generic protocol is too deep to evaluate here
  const def = hand as unknown as HandDefinition & { protocol?: Protocol };
  if (typeof def !== 'object' || def === null)
    throw new TypeError('defineHand(def): def must be an object { manifest, start, stop? }');
  if (typeof def.manifest !== 'object' || def.manifest === null)
    throw new TypeError('defineHand(def): def.manifest must be an object');
  if (typeof def.manifest.id !== 'string' || def.manifest.id === '')
    throw new TypeError('defineHand(def): def.manifest.id must be a non-empty string');
  if (typeof def.start !== 'function')
    throw new TypeError(`defineHand(def): Hand "${def.manifest.id}" has no start(ctx) function`);
  if (def.stop !== undefined && typeof def.stop !== 'function')
    throw new TypeError(`defineHand(def): Hand "${def.manifest.id}": stop must be a function`);
  if (def.chat !== undefined && typeof def.chat !== 'function')
    throw new TypeError(`defineHand(def): Hand "${def.manifest.id}": chat must be a function`);
  const requests: Record<string, unknown> = def.requests ?? {};
  for (const [kind, fn] of Object.entries(requests)) {
    if (typeof fn !== 'function')
      throw new TypeError(`defineHand(def): Hand "${def.manifest.id}": requests.${kind} must be a function`);
  }
  if (def.protocol) {
    const missing = Object.keys(def.protocol).filter((k) => !Object.hasOwn(requests, k));
    if (missing.length > 0)
      throw new TypeError(
        `defineHand(def): Hand "${def.manifest.id}" declares request kinds it has no handler for: ${missing.join(', ')}`,
      );
    const extra = Object.keys(requests).filter((k) => !Object.hasOwn(def.protocol!, k));
    if (extra.length > 0)
      throw new TypeError(
        `defineHand(def): Hand "${def.manifest.id}" handles request kinds its protocol does not declare: ${extra.join(', ')}`,
      );
  }
  return def;
}
