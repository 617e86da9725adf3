/**
 * What a Hand imports: `export default defineHand({ manifest, start(ctx), stop() })`.
 * defineHand only checks the shape, so a mistake shows at load rather than at start; the
 * kernel validates the manifest against its schema (runtime/supervisor/manifest.ts).
 */
import type { HandDefinition } from './types.ts';

export type * from './types.ts';

export function defineHand(def: HandDefinition): HandDefinition {
  if (typeof def !== 'object' || def === null) throw new TypeError('defineHand(def): def must be an object { manifest, start, stop? }');
  if (typeof def.manifest !== 'object' || def.manifest === null) throw new TypeError('defineHand(def): def.manifest must be an object');
  if (typeof def.manifest.id !== 'string' || def.manifest.id === '') throw new TypeError('defineHand(def): def.manifest.id must be a non-empty string');
  if (typeof def.start !== 'function') throw new TypeError(`defineHand(def): Hand "${def.manifest.id}" has no start(ctx) function`);
  if (def.stop !== undefined && typeof def.stop !== 'function') throw new TypeError(`defineHand(def): Hand "${def.manifest.id}": stop must be a function`);
  if (def.chat !== undefined && typeof def.chat !== 'function') throw new TypeError(`defineHand(def): Hand "${def.manifest.id}": chat must be a function`);
  return def;
}
