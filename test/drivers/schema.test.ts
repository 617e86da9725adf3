/**
 * The driver config schemas (compiled the way the config schema is: ajv strict, all errors,
 * defaults) and the factory: every type validates and builds, errors name the chosen
 * driver only, and createDrivers() refuses clashing names and ids. The driver list
 * (drivers/index.ts) is the one place types are named: every folder with an entry is in it,
 * and the schema's types are the list's, and importing the list loads no driver code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createDriver, createDrivers, DEMO_DRIVERS, DRIVERS, type DriverConfig } from '../../drivers/index.ts';
import { driversSchema, DRIVER_SCHEMAS, DRIVER_TYPES, driverEntrySchema } from '../../drivers/schema.ts';
import { SIM_PRESETS } from '../../drivers/sim/schema.ts';
import { PRESETS } from '../../drivers/sim/patterns.ts';
import { TalonError } from '../../runtime/core/errors.ts';

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, allowUnionTypes: true, strict: true });
ajv.addKeyword('x-hint');
const validate = ajv.compile(driversSchema);

const good: DriverConfig[] = [
  { type: 'system', name: 'system', mounts: ['/'], vcgencmd: false, throttledIntervalMs: 60_000 },
  {
    type: 'sim',
    name: 'lab',
    seed: 3,
    sensors: [
      { id: 'lab.t', pattern: 'temperature', unit: '°C' },
      {
        id: 'lab.p',
        periodMs: 500,
        push: true,
        pattern: {
          base: { type: 'walk', start: 1000, step: 0.5, stepMs: 1000, min: 950, max: 1050 },
          noise: 0.1,
          anomalies: [
            { type: 'spike', magnitude: 20, everyMs: 60_000, probability: 0.2, durationMs: 2000, direction: 'both' },
            { type: 'stuck', at: [120_000], durationMs: 30_000 },
            { type: 'dropout', everyMs: 300_000, durationMs: 10_000 },
            { type: 'drift', startMs: 600_000, ratePerHour: 5 },
          ],
        },
      },
    ],
    actuators: [{ id: 'lab.heater', kind: 'boolean' }],
  },
  {
    type: 'gpio',
    name: 'header',
    pollMs: 20,
    pins: [
      { id: 'btn', bcm: 17, direction: 'in', edge: 'falling', debounceMs: 30, activeLow: true },
      { id: 'fan', bcm: 22, direction: 'out' },
    ],
  },
  { type: 'serial', name: 'meter', path: '/dev/ttyUSB0', baudRate: 9600, protocol: 'kv', sensors: [{ id: 'meter.v' }] },
];

function errors(v: unknown): string[] {
  return validate(v) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

describe('driver config schemas', () => {
  it('accept a config of every driver type, and the demo drivers', () => {
    assert.deepEqual(errors(good), []);
    assert.deepEqual(errors(DEMO_DRIVERS), []);
  });

  it('list exactly the sim presets patterns.ts has', () => {
    assert.deepEqual([...SIM_PRESETS].sort(), Object.keys(PRESETS).sort());
  });

  it('report errors of the chosen driver only', () => {
    const e = errors([{ type: 'sim', name: 'x', sensors: [{ id: 'Bad Id', pattern: 'temperature', colour: 'red' }] }]);
    assert.ok(e.length > 0);
    // no noise from the system, gpio and serial schemas: only the sim sensor's two faults
    assert.deepEqual(
      e.filter((m) => m !== '/0 must match "then" schema'),
      [
        '/0/sensors/0 must NOT have additional properties',
        '/0/sensors/0/id must match pattern "^[a-z0-9][a-z0-9._-]{0,127}$"',
      ],
    );
  });

  it('refuse unknown types, unknown keys, and out-of-range pins', () => {
    assert.match(errors([{ type: 'usb', name: 'x' }]).join('\n'), /must be equal to one of the allowed values/);
    assert.match(errors([{ type: 'system', name: 'x', procfs: '/proc' }]).join('\n'), /additional properties/);
    assert.match(
      errors([{ type: 'gpio', name: 'g', pins: [{ id: 'a', bcm: 54, direction: 'in' }] }]).join('\n'),
      /\/0\/pins\/0\/bcm must be <= 53/,
    );
    assert.match(
      errors([{ type: 'gpio', name: 'g', pins: [{ id: 'a', bcm: 4, direction: 'sideways' }] }]).join('\n'),
      /direction/,
    );
    assert.ok(
      errors([
        { type: 'sim', name: 's', sensors: [{ id: 'a', pattern: { base: { type: 'sine', mean: 0, amplitude: 1 } } }] },
      ]).length > 0,
    );
    assert.ok(errors([{ type: 'system', name: 'x', vcgencmd: true }]).length > 0);
  });
});

describe('createDriver / createDrivers', () => {
  it('makes a driver of each type', async () => {
    const types = await Promise.all(good.map(async (c) => (await createDriver(c)).type));
    assert.deepEqual(types, ['system', 'sim', 'gpio', 'serial']);
    assert.deepEqual(
      (await createDrivers(good)).map((d) => d.type),
      ['system', 'sim', 'gpio', 'serial'],
    );
  });

  it('refuses an unknown type, clashing names and clashing sensor or actuator ids', async () => {
    await assert.rejects(
      createDriver({ type: 'usb', name: 'x' } as unknown as DriverConfig),
      (e: unknown) =>
        e instanceof TalonError && e.code === 'CONFIG_INVALID' && /known: system, sim, gpio, serial/.test(e.message),
    );
    const sim = (name: string, id: string, act = `${name}.fan`): DriverConfig => ({
      type: 'sim',
      name,
      sensors: [{ id, pattern: 'door' }],
      actuators: [{ id: act }],
    });
    await assert.rejects(createDrivers([sim('a', 'x'), sim('a', 'y')]), /two drivers are named "a"/);
    await assert.rejects(createDrivers([sim('a', 'x'), sim('b', 'x')]), /sensor id x is used by drivers a and b/);
    await assert.rejects(
      createDrivers([sim('a', 'x', 'fan'), sim('b', 'y', 'fan')]),
      /actuator id fan is used by drivers a and b/,
    );
    assert.equal((await createDrivers(DEMO_DRIVERS)).length, 2);
  });
});

describe('the driver list', () => {
  const root = resolve(import.meta.dirname, '..', '..', 'drivers');

  it('has every folder with an entry.ts, once, and the schemas are derived from it', () => {
    const folders = readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'entry.ts')))
      .map((d) => d.name);
    assert.deepEqual(DRIVERS.map((e) => e.type).sort(), folders.sort());
    assert.deepEqual(
      [...DRIVER_TYPES],
      DRIVERS.map((e) => e.type),
    );
    assert.deepEqual(
      Object.keys(DRIVER_SCHEMAS),
      DRIVERS.map((e) => e.type),
    );
    assert.deepEqual(
      driverEntrySchema.properties.type.enum,
      DRIVERS.map((e) => e.type),
    );
    for (const e of DRIVERS) {
      assert.equal(
        (e.schema.properties as { type: { const: string } }).type.const,
        e.type,
        `${e.type}'s schema says its type`,
      );
      assert.equal(DRIVER_SCHEMAS[e.type].$schema, undefined, 'a sub-schema has no $schema');
    }
  });

  it("loads no driver code when imported: only an entry's create() does", () => {
    // follow the static imports (not `import type`, not import()) from the list and the schema
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^'";]*?from\s+'(\.[^']+)'/gm)) {
        visit(resolve(dirname(file), m[1]!));
      }
    };
    visit(join(root, 'index.ts'));
    visit(join(root, 'schema.ts'));
    const loaded = [...seen].map((f) => f.slice(root.length + 1));
    assert.deepEqual(
      loaded.filter((f) =>
        /(^|\/)driver\.ts$|backend\.ts$|modbus\.ts$|protocols\.ts$|procfs\.ts$|patterns\.ts$/.test(f),
      ),
      [],
      loaded.join(', '),
    );
    assert.ok(loaded.includes('sim/entry.ts') && loaded.includes('serial/schema.ts'), loaded.join(', '));
  });
});
