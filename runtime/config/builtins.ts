/**
 * The built-in Hands, as the config layer knows them: given to it once at start by the
 * composition root (runtime/host, runtime/cli: `setBuiltinHands(BUILTIN_HANDS)` from
 * hands/catalog.ts), so nothing under runtime/config names a Hand. Validation uses them twice:
 * a config that lists no Hands runs their default instances, and loadConfig checks that a
 * `module` naming a built-in id names one that exists.
 *
 * A process that registers none (a unit test of the config layer, say) has no built-in Hands:
 * a config without `hands` runs none.
 */

/** a built-in Hand as the config layer needs it (hands/catalog.ts's BuiltinHand fits it) */
export interface BuiltinHandInfo {
  /** the id a config's `module` names */
  readonly id: string;
  /** the instance a config that lists no Hands runs */
  readonly defaultInstance?: { readonly name: string } | undefined;
}

let builtins: readonly BuiltinHandInfo[] = [];

/** Registers the built-in Hands (replacing any registered before). */
export function setBuiltinHands(list: readonly BuiltinHandInfo[]): void {
  builtins = list.map((h) => ({
    id: h.id,
    ...(h.defaultInstance ? { defaultInstance: { name: h.defaultInstance.name } } : {}),
  }));
}

/** the ids a config's `module` may name without a path */
export function builtinHandIds(): string[] {
  return builtins.map((h) => h.id);
}

/** `hands` of a config that lists none: each built-in Hand's default instance (a fresh copy) */
export function defaultHands(): Array<{ name: string; module: string }> {
  return builtins.flatMap((h) => (h.defaultInstance ? [{ name: h.defaultInstance.name, module: h.id }] : []));
}
