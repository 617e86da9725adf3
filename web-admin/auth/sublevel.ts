import type { Store, Sublevel } from '../../runtime/store/store.ts';

/** The auth subsystem's parts live under the store's `auth` sublevel: `users`, `sessions`, `tokens`. */
export function authSublevel<V>(store: Store, name: 'users' | 'sessions' | 'tokens'): Sublevel<V> {
  return store.db.sublevel<string, V>(['auth', name], { valueEncoding: 'json' });
}
