/**
 * The built-in Hands: one entry per folder under hands/ that ships in the binary, with the
 * surface it brings (hands/<id>/surface.ts: its typed requests, routes, CLI commands, metrics
 * and page). Only the composition root (runtime/host/, runtime/cli/) imports this list and
 * hands it to the runtime, so nothing in runtime/ or web-admin/ names a specific Hand; deleting a
 * Hand's folder and its line here removes it everywhere.
 *
 * Surface modules are light (schemas and small handlers); their heavy parts load when used.
 */
import type { AnySurface } from './sdk/surface.ts';
import monitoring from './monitoring/surface.ts';
import scheduling from './scheduling/surface.ts';
import communication from './communication/surface.ts';
import research from './research/surface.ts';
import leads from './leads/surface.ts';
import webAutomation from './web-automation/surface.ts';

export interface BuiltinHand {
  /** the folder name, the `module` a config uses, the bundle's dist/hands/<id>.cjs */
  id: string;
  /** the instance a config that lists no Hands runs */
  defaultInstance?: { name: string };
  /** what the Hand adds to the API, the CLI, /metrics and the page */
  surface?: AnySurface;
}

export const BUILTIN_HANDS: readonly BuiltinHand[] = [
  { id: 'monitoring', defaultInstance: { name: 'monitoring' }, surface: monitoring },
  { id: 'scheduling', defaultInstance: { name: 'scheduler' }, surface: scheduling },
  // no default instance: a device has no channels until someone configures one
  { id: 'communication', surface: communication },
  // no default instances: a device has no topics, sources or CRM until someone configures them
  { id: 'research', surface: research },
  { id: 'leads', surface: leads },
  { id: 'web-automation', surface: webAutomation },
];

/** the built-in Hands' surfaces, in catalog order */
export const BUILTIN_SURFACES: readonly AnySurface[] = BUILTIN_HANDS.flatMap((h) => (h.surface ? [h.surface] : []));
