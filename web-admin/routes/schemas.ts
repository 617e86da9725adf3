/** Schema pieces the route files share. */
import type { Schema } from '../route.ts';
import { HAND_NAME_PATTERN, SECRET_NAME_PATTERN, SENSOR_ID_PATTERN } from '../../runtime/core/names.ts';

/** an object with exactly these properties (all required unless listed in `optional`) */
export function obj(properties: Record<string, Schema>, optional: string[] = [], extra: Schema = {}): Schema {
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    properties,
    ...extra,
  };
}

/** an open object: these properties are checked, others allowed (response schemas of runtime objects) */
export function open(properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema {
  return { type: 'object', required, properties };
}

export const str = (maxLength = 200, extra: Schema = {}): Schema => ({ type: 'string', maxLength, ...extra });
export const int = (minimum: number, maximum: number, extra: Schema = {}): Schema => ({
  type: 'integer',
  minimum,
  maximum,
  ...extra,
});
export const num: Schema = { type: 'number' };
export const bool: Schema = { type: 'boolean' };
export const anyObject: Schema = { type: 'object' };

/** a Hand's name (also what keeps `..` and `/` out of paths) */
export const HAND_NAME: Schema = {
  type: 'string',
  pattern: HAND_NAME_PATTERN,
  description: 'lowercase letters, digits and dashes',
};
export const SENSOR_ID: Schema = { type: 'string', pattern: SENSOR_ID_PATTERN };
export const SECRET_NAME: Schema = { type: 'string', pattern: SECRET_NAME_PATTERN };
export const ms: Schema = { type: 'integer', minimum: 0, maximum: 1e15 };

export const params = (props: Record<string, Schema>): Schema => obj(props);
