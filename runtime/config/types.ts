/**
 * The shape of a validated Talon config (after defaults are applied), derived from the JSON
 * Schema in ./schema.ts with json-schema-to-ts's FromSchema: one declaration, so the types
 * cannot drift from what validation accepts. Fields with a schema default are required here
 * (validation fills them); the field documentation lives on the schema.
 *
 * Two parts are typed from elsewhere: `drivers` from the driver list (drivers/index.ts, each
 * type's own schema), and `hands`, which the schema leaves without a default (the config layer
 * names no Hand) but validation always fills (./builtins.ts), so it is required here.
 */
import type { FromSchema } from 'json-schema-to-ts';
import type { talonConfigSchema } from './schema.ts';
import type { DriverConfig } from '../../drivers/index.ts';

type Schema = typeof talonConfigSchema;

/**
 * The config as FromSchema reads the schema: without `$schema` (validation drops it) and
 * `drivers` (typed from the driver list). if/then/else is parsed: a Hand's `network` grant is
 * a host list or an object, chosen by `if: { type: 'array' }`.
 */
type Derived = FromSchema<
  Omit<Schema, 'properties'> & { properties: Omit<Schema['properties'], '$schema' | 'drivers'> },
  { parseIfThenElseKeywords: true }
>;

export type TalonConfig = Omit<Derived, 'hands'> & { hands: HandConfig[]; drivers: DriverConfig[] };

/** The web admin's listener; TLS is optional (a self-signed certificate is made when no files are given). */
export type HttpConfig = Derived['http'];
export type BusConfig = Derived['bus'];
export type ListenAddress = BusConfig['embedded']['listen'];
/** a user of the embedded broker's LAN listener */
export type MqttUser = NonNullable<BusConfig['embedded']['lan']>['users'][number];
export type SupervisorConfig = Derived['supervisor'];
/** one entry of `hands: [...]`: a Hand instance */
export type HandConfig = NonNullable<Derived['hands']>[number];
/** fleet membership; absent = standalone */
export type ProvisioningConfig = NonNullable<Derived['provisioning']>;
/** tools, approvals and MCP (runtime/tools) */
export type ToolsSection = Derived['tools'];
export type McpServerSection = ToolsSection['mcp']['servers'][number];
