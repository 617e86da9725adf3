/**
 * Schema pieces the route files share. The helpers keep their arguments' literal types (`const`
 * generics), so a query or body schema built from them still says what it accepts at the type
 * level, and route() (../route.ts) types the handler's `query` and `body` from it.
 */
import type { Schema } from '../route.ts';
import { HAND_NAME_PATTERN, SECRET_NAME_PATTERN, SENSOR_ID_PATTERN } from '../../runtime/core/names.ts';

/**
 * A with B's keys laid over it (the type of `{ ...a, ...b }`). B is NoInfer: a helper called
 * inside another's arguments would otherwise take its `extra` from the contextual type (Schema).
 */
type Merge<A, B> = Omit<A, keyof NoInfer<B>> & NoInfer<B>;
type NoExtra = Record<never, never>;

/** an object with exactly these properties (all required unless listed in `optional`) */
export function obj<
  const P extends Record<string, Schema>,
  const O extends readonly (keyof P & string)[] = [],
  const E extends Schema = NoExtra,
>(
  properties: P,
  optional: O = [] as unknown as O,
  extra: E = {} as E,
): Merge<
  {
    type: 'object';
    additionalProperties: false;
    required: Exclude<keyof P & string, NoInfer<O>[number]>[];
    properties: P;
  },
  E
> {
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties).filter((k) => !(optional as readonly string[]).includes(k)),
    properties,
    ...extra,
  } as unknown as Merge<
    {
      type: 'object';
      additionalProperties: false;
      required: Exclude<keyof P & string, NoInfer<O>[number]>[];
      properties: P;
    },
    E
  >;
}

/** an open object: these properties are checked, others allowed (response schemas of runtime objects) */
export function open(properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema {
  return { type: 'object', required, properties };
}

export const str = <const E extends Schema = NoExtra>(
  maxLength = 200,
  extra: E = {} as E,
): Merge<{ type: 'string'; maxLength: number }, E> => ({ type: 'string', maxLength, ...extra });
export const int = <const E extends Schema = NoExtra>(
  minimum: number,
  maximum: number,
  extra: E = {} as E,
): Merge<{ type: 'integer'; minimum: number; maximum: number }, E> => ({
  type: 'integer',
  minimum,
  maximum,
  ...extra,
});
export const num = { type: 'number' } as const satisfies Schema;
export const bool = { type: 'boolean' } as const satisfies Schema;
export const anyObject = { type: 'object' } as const satisfies Schema;

/** a Hand's name (also what keeps `..` and `/` out of paths) */
export const HAND_NAME = {
  type: 'string',
  pattern: HAND_NAME_PATTERN,
  description: 'lowercase letters, digits and dashes',
} as const satisfies Schema;
export const SENSOR_ID = { type: 'string', pattern: SENSOR_ID_PATTERN } as const satisfies Schema;
export const SECRET_NAME = { type: 'string', pattern: SECRET_NAME_PATTERN } as const satisfies Schema;
export const ms = { type: 'integer', minimum: 0, maximum: 1e15 } as const satisfies Schema;

/** the path parameters (all required) */
export const params = <const P extends Record<string, Schema>>(props: P) => obj(props);
