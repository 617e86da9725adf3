/**
 * What a caller may hand on: a token or a user can grant only scopes and roles it holds
 * itself. A caller holds a scope when both its own scopes (a token's list; `*` for sessions
 * and the CLI) and its account's role allow it: `admin` holds everything (`*`), `viewer` reads
 * every area but the admin ones (users, tokens, secrets). So:
 * - a token may mint only tokens whose scopes it holds (`*` only from `*`), never outliving itself;
 * - making (or promoting to) an admin takes `*`; making a viewer takes every viewer scope;
 * - changing or deleting an account takes holding that account's role (a new password for an
 *   admin would otherwise hand over the admin).
 * Refusals are SCOPE_ESCALATION (403).
 */
import { TalonError } from '../../runtime/core/errors.ts';
import type { Principal, Role, Tag } from '../route.ts';

export const TAGS: readonly Tag[] = [
  'system',
  'hands',
  'sensors',
  'alerts',
  'audit',
  'config',
  'llm',
  'chat',
  'bus',
  'users',
  'tokens',
  'session',
  'provisioning',
  'secrets',
  'tools',
  'schedules',
  'channels',
  'messages',
  'reports',
  'prospects',
  'automation',
  'mcp',
];
/**
 * the areas whose every route is `admin` access: a viewer reads none of them (`mcp`: the /mcp
 * endpoint, whose tools act on the device, so only an admin makes an `mcp:write` token)
 */
const ADMIN_AREAS: readonly Tag[] = ['users', 'tokens', 'secrets', 'mcp'];

export const ROLE_SCOPES: Record<Role, readonly string[]> = {
  admin: ['*'],
  viewer: TAGS.filter((t) => !ADMIN_AREAS.includes(t)).map((t) => `${t}:read`),
};

/** is `scope` (`*`, `<tag>:read`, `<tag>:write`) within `set`? (`<tag>:write` covers `<tag>:read`) */
export function covers(set: readonly string[], scope: string): boolean {
  if (set.includes('*')) return true;
  if (scope === '*') return false;
  if (set.includes(scope)) return true;
  const [tag, level] = scope.split(':');
  return level === 'read' && set.includes(`${tag}:write`);
}

/** does the caller hold `scope`: its scopes and its role both allow it */
export function holds(p: Principal, scope: string): boolean {
  if (p.role === null) return false;
  return covers(p.scopes, scope) && covers(ROLE_SCOPES[p.role], scope);
}

/** throws SCOPE_ESCALATION unless the caller holds every one of `scopes` */
export function checkGrant(p: Principal, scopes: readonly string[], what: string): void {
  const missing = scopes.filter((s) => !holds(p, s));
  if (missing.length === 0) return;
  throw new TalonError(
    'SCOPE_ESCALATION',
    `${what}: ${p.actor} can grant only what it holds itself, and lacks ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`,
    { details: { missing } },
  );
}

/** throws SCOPE_ESCALATION unless the caller holds everything `role` can do */
export function checkRole(p: Principal, role: Role, what: string): void {
  checkGrant(p, role === 'admin' ? ['*'] : ROLE_SCOPES[role], `${what} (the ${role} role)`);
}
