/**
 * The Hand manifest's JSON Schemas and default quotas live in runtime/core/manifest-schema.ts,
 * next to the types derived from them; re-exported here for the kernel's schema registry and
 * the config schema.
 */
export {
  DEFAULT_QUOTAS,
  networkSchema,
  capabilitiesSchema,
  quotasSchema,
  manifestSchema,
} from '../core/manifest-schema.ts';
