/**
 * The built-in Hands: one entry per folder under hands/ that ships in the binary. Only the
 * composition root (runtime/host/, runtime/cli/) imports this list and hands it to the runtime,
 * so nothing in runtime/ or web-admin/ names a specific Hand; deleting a Hand's folder and its
 * line here removes it everywhere.
 */
export interface BuiltinHand {
  /** the folder name, the `module` a config uses, the bundle's dist/hands/<id>.cjs */
  id: string;
  /** the instance a config that lists no Hands runs */
  defaultInstance?: { name: string };
}

export const BUILTIN_HANDS: readonly BuiltinHand[] = [
  { id: 'monitoring', defaultInstance: { name: 'monitoring' } },
];
