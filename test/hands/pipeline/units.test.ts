/**
 * hands/pipeline/units.ts: conversions checked against published constants (100 °C = 212 °F, 1 bar = 14.5038 psi,
 * 1 kWh = 3.6 MJ, 1 mile = 1.609344 km …), round trips, aliases, and the pairs refused when the pipeline loads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { convertUnit, dimensionOf, knownUnits, unitConverter } from '../../../hands/pipeline/units.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

const near = (actual: number, expected: number, rel = 1e-9): void => {
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)),
    `${actual} is not ${expected} (within ${rel})`,
  );
};

test('temperature: the fixed points of water and absolute zero', () => {
  near(convertUnit(100, 'C', 'F'), 212);
  near(convertUnit(0, 'C', 'F'), 32);
  near(convertUnit(-40, 'C', 'F'), -40);
  near(convertUnit(0, 'C', 'K'), 273.15);
  near(convertUnit(0, 'K', 'F'), -459.67);
  near(convertUnit(98.6, '°F', 'degC'), 37);
  near(convertUnit(300, 'kelvin', 'celsius'), 26.85);
});

test('length, mass, speed and time against their definitions', () => {
  near(convertUnit(1, 'mi', 'km'), 1.609344);
  near(convertUnit(1, 'in', 'mm'), 25.4);
  near(convertUnit(3, 'ft', 'yd'), 1);
  near(convertUnit(1, 'nmi', 'm'), 1852);
  near(convertUnit(1, 'lb', 'kg'), 0.45359237);
  near(convertUnit(16, 'oz', 'lb'), 1);
  near(convertUnit(2.5, 't', 'g'), 2.5e6);
  near(convertUnit(36, 'km/h', 'm/s'), 10);
  near(convertUnit(60, 'mph', 'km/h'), 96.56064);
  near(convertUnit(1, 'kn', 'km/h'), 1.852);
  near(convertUnit(90, 'min', 'h'), 1.5);
  near(convertUnit(1, 'd', 'ms'), 86_400_000);
  near(convertUnit(1500, 'us', 'ms'), 1.5);
});

test('pressure: 1 bar = 14.5038 psi, 1 atm = 1013.25 hPa = 760 mmHg', () => {
  near(convertUnit(1, 'bar', 'psi'), 14.503773773, 1e-9);
  assert.equal(Math.round(convertUnit(1, 'bar', 'psi') * 1e4) / 1e4, 14.5038);
  near(convertUnit(1, 'atm', 'hPa'), 1013.25);
  near(convertUnit(1, 'atm', 'mmHg'), 760, 1e-6);
  near(convertUnit(1013.25, 'hPa', 'kPa'), 101.325);
  near(convertUnit(1, 'psi', 'Pa'), 6894.757293168, 1e-12);
  near(convertUnit(2, 'bar', 'mbar'), 2000);
});

test('energy and power: 1 kWh = 3.6e6 J, 1 kcal = 4184 J, 1 hp = 745.7 W', () => {
  near(convertUnit(1, 'kWh', 'J'), 3.6e6);
  near(convertUnit(1, 'kWh', 'Wh'), 1000);
  near(convertUnit(7.2e6, 'J', 'kWh'), 2);
  near(convertUnit(1, 'kcal', 'J'), 4184);
  near(convertUnit(1, 'BTU', 'J'), 1055.05585262);
  near(convertUnit(1, 'hp', 'W'), 745.69987158227, 1e-12);
  near(convertUnit(2.5, 'kW', 'W'), 2500);
});

test('data: decimal and binary prefixes, bits', () => {
  near(convertUnit(1, 'KiB', 'B'), 1024);
  near(convertUnit(1, 'KB', 'B'), 1000);
  near(convertUnit(1, 'GiB', 'MiB'), 1024);
  near(convertUnit(1, 'GB', 'MB'), 1000);
  near(convertUnit(1, 'B', 'bit'), 8);
  near(convertUnit(1, 'MiB', 'MB'), 1.048576);
});

test('every unit round-trips through every other unit of its dimension', () => {
  const units = knownUnits();
  let pairs = 0;
  for (const a of units)
    for (const b of units) {
      if (dimensionOf(a) !== dimensionOf(b)) continue;
      const there = unitConverter(a, b);
      const back = unitConverter(b, a);
      near(back(there(12.5)), 12.5, 1e-9);
      pairs++;
    }
  assert.ok(pairs > 300, `${pairs} pairs`);
});

test('an unknown unit or two dimensions is refused, naming the field and the choices', () => {
  assert.throws(
    () => unitConverter('C', 'psi', 'pipelines.p.transforms.t'),
    (e: unknown) =>
      e instanceof TalonError &&
      e.code === 'BAD_REQUEST' &&
      /^pipelines\.p\.transforms\.t: cannot convert C \(temperature\) to psi \(pressure\)/.test(e.message) &&
      e.message.includes('C, F, K'),
  );
  assert.throws(
    () => unitConverter('furlong', 'm', 'pipelines.p.transforms.t'),
    (e: unknown) =>
      e instanceof TalonError && /^pipelines\.p\.transforms\.t\.from: "furlong" is not a known unit/.test(e.message),
  );
  assert.throws(
    () => unitConverter('m', 'Kb', 'x'),
    (e: unknown) =>
      e instanceof TalonError && /x\.to: "Kb" is not a known unit \(did you mean KB or kB\?\)/.test(e.message),
  );
  assert.equal(dimensionOf('mB'), undefined);
});
