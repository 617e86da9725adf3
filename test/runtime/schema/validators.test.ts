/**
 * The config validator the kernel runs checks each driver entry with its type's own
 * validator (runtime/schema/registry.ts `split`), so a kernel loads only the driver
 * validators its config uses. Its answers must be those of the whole schema
 * (runtime/config/schema.ts, drivers and all): same verdict, same errors in the same order,
 * same defaults applied. Also checked through the bundle, where each driver's validator is
 * precompiled and evaluated on first use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { talonConfigSchema } from '../../../runtime/config/schema.ts';
import { SCHEMAS } from '../../../runtime/schema/registry.ts';
import { makeAjv, validator } from '../../../runtime/schema/validators.ts';
import { DEMO_DRIVERS } from '../../../drivers/demo.ts';
import { common } from '../../../image/bundle.ts';

const whole = makeAjv(SCHEMAS.config!).compile(talonConfigSchema as unknown as Record<string, unknown>);

const CASES: Array<[string, unknown]> = [
  ['empty (defaults, the demo drivers)', {}],
  ['no drivers', { drivers: [] }],
  ['the demo drivers', { drivers: DEMO_DRIVERS }],
  [
    'every driver type',
    {
      drivers: [
        { type: 'system', name: 'system' },
        { type: 'sim', name: 'lab', sensors: [{ id: 'lab.t', pattern: 'temperature' }] },
        { type: 'gpio', name: 'header', pins: [{ id: 'btn', bcm: 17, direction: 'in' }] },
        { type: 'serial', name: 'meter', path: '/dev/ttyUSB0', protocol: 'kv', sensors: [{ id: 'meter.v' }] },
      ],
    },
  ],
  [
    'bad sim sensor',
    { drivers: [{ type: 'sim', name: 'x', sensors: [{ id: 'Bad Id', pattern: 'temperature', colour: 'red' }] }] },
  ],
  [
    'unknown type, missing name, not an object',
    { drivers: [{ type: 'usb', name: 'x' }, { type: 'system' }, 7, { name: 'no-type' }] },
  ],
  [
    'errors before, in and after the drivers',
    {
      deviceName: '',
      hands: [{ name: 'BAD NAME', module: 'x' }],
      http: { port: 'eighty' },
      drivers: [
        { type: 'gpio', name: 'g', pins: [{ id: 'a', bcm: 54, direction: 'sideways' }] },
        { type: 'system', name: 's', procfs: '/proc' },
      ],
      homeAssistant: { enabled: 'yes' },
      unknownKey: 1,
    },
  ],
  ['only root-level errors and a driver error', { drivers: [{ type: 'serial', name: 'm' }], surprise: true }],
];

const shape = (errors: ErrorObject[] | null | undefined): string[] =>
  (errors ?? []).filter((e) => e.keyword !== 'if').map((e) => `${e.instancePath} ${e.keyword} ${e.message ?? ''}`);

function check(split: ValidateFunction): void {
  for (const [what, input] of CASES) {
    const a = structuredClone(input);
    const b = structuredClone(input);
    const okWhole = whole(a);
    const okSplit = split(b);
    assert.equal(okSplit, okWhole, what);
    assert.deepEqual(shape(split.errors), shape(whole.errors), what);
    assert.deepEqual(b, a, `${what}: the same defaults applied`);
  }
}

test('the split config validator answers as the whole schema does (from source: compiled on first use)', () => {
  check(validator('config'));
});

test("in the bundle, each driver type's validator is evaluated on first use, and answers the same", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-schemas-'));
  const outfile = join(dir, 'validators.cjs');
  await build({
    ...common,
    logLevel: 'error',
    outfile,
    stdin: {
      contents:
        "export { validator } from './runtime/schema/validators.ts'; export { precompiled } from './runtime/schema/precompiled.ts';",
      resolveDir: join(import.meta.dirname, '..', '..', '..'),
      loader: 'ts',
    },
  });
  const bundled = createRequire(import.meta.url)(outfile) as {
    validator: (id: string) => ValidateFunction;
    precompiled: Record<string, ValidateFunction>;
  };
  for (const id of ['driver.system', 'driver.sim', 'driver.gpio', 'driver.serial']) {
    const d = Object.getOwnPropertyDescriptor(bundled.precompiled, id);
    assert.equal(typeof d?.get, 'function', `${id} is a getter`);
    assert.equal(bundled.precompiled[id], bundled.precompiled[id], `${id} is evaluated once`);
  }
  for (const id of ['config', 'manifest', 'quotas'])
    assert.equal(typeof Object.getOwnPropertyDescriptor(bundled.precompiled, id)?.value, 'function', id);
  // the config's own validator carries no driver body (generated code names `/maxLineBytes`, the schema data does not)
  assert.ok(!bundled.precompiled.config!.toString().includes('"/maxLineBytes"'));
  assert.ok(bundled.precompiled['driver.serial']!.toString().includes('"/maxLineBytes"'));
  check(bundled.validator('config'));
});
