/**
 * Unit conversion for the Data Pipeline Hand's `convert` transform (./transforms.ts): `{ field, from, to }` with the
 * units below. Pure: a table and arithmetic.
 *
 * Every unit belongs to one dimension and is a factor to the dimension's base unit (metre, kilogram, pascal, m/s,
 * joule, byte, second, watt); temperature is affine (to kelvin: C + 273.15, (F − 32) × 5/9 + 273.15). A pair of units
 * from two dimensions, or a unit that is not in the table, is refused when the pipeline is loaded (`unitConverter`
 * throws a TalonError('BAD_REQUEST') naming the unit and what it could be), never per record.
 *
 * The factors are the exact definitions where there is one (inch = 0.0254 m, pound = 0.45359237 kg, psi = pound-force
 * per square inch = 6894.757293168361 Pa, kWh = 3.6e6 J, KiB = 1024 B, thermochemical calorie = 4.184 J) and the
 * conventional value otherwise (mmHg = 133.322387415 Pa, BTU (IT) = 1055.05585262 J). Data: KB, MB … are decimal
 * (1000), KiB, MiB … binary (1024); `bit` is an eighth of a byte. Names are case-sensitive (`mB` is not `MB`); the
 * usual spellings are aliases (`°C`, `degC`, `celsius`).
 */
import { TalonError } from '../../runtime/core/errors.ts';

export type Dimension = 'temperature' | 'length' | 'mass' | 'pressure' | 'speed' | 'energy' | 'power' | 'data' | 'time';

interface Unit {
  dimension: Dimension;
  /** value × factor = the base unit (not used for temperature) */
  factor: number;
}

const LB = 0.45359237;
const INCH = 0.0254;
/** pound-force per square inch: standard gravity (9.80665) × pound / inch² */
const PSI = (9.80665 * LB) / (INCH * INCH);

/** name → [dimension, factor]; aliases in ALIASES */
const TABLE: Record<string, [Dimension, number]> = {
  // temperature (affine: see toKelvin)
  C: ['temperature', 1],
  F: ['temperature', 1],
  K: ['temperature', 1],
  // length: metre
  m: ['length', 1],
  km: ['length', 1000],
  cm: ['length', 0.01],
  mm: ['length', 0.001],
  um: ['length', 1e-6],
  in: ['length', INCH],
  ft: ['length', 0.3048],
  yd: ['length', 0.9144],
  mi: ['length', 1609.344],
  nmi: ['length', 1852],
  // mass: kilogram
  kg: ['mass', 1],
  g: ['mass', 0.001],
  mg: ['mass', 1e-6],
  t: ['mass', 1000],
  lb: ['mass', LB],
  oz: ['mass', LB / 16],
  // pressure: pascal
  Pa: ['pressure', 1],
  hPa: ['pressure', 100],
  kPa: ['pressure', 1000],
  MPa: ['pressure', 1e6],
  mbar: ['pressure', 100],
  bar: ['pressure', 1e5],
  psi: ['pressure', PSI],
  atm: ['pressure', 101_325],
  mmHg: ['pressure', 133.322387415],
  inHg: ['pressure', 3386.389],
  // speed: metre per second
  'm/s': ['speed', 1],
  'km/h': ['speed', 1000 / 3600],
  mph: ['speed', 1609.344 / 3600],
  kn: ['speed', 1852 / 3600],
  'ft/s': ['speed', 0.3048],
  // energy: joule
  J: ['energy', 1],
  kJ: ['energy', 1000],
  MJ: ['energy', 1e6],
  Wh: ['energy', 3600],
  kWh: ['energy', 3.6e6],
  MWh: ['energy', 3.6e9],
  cal: ['energy', 4.184],
  kcal: ['energy', 4184],
  BTU: ['energy', 1055.05585262],
  // power: watt
  W: ['power', 1],
  kW: ['power', 1000],
  MW: ['power', 1e6],
  /** mechanical horsepower: 550 foot-pounds-force per second */
  hp: ['power', 550 * 0.3048 * 9.80665 * LB],
  // data: byte
  bit: ['data', 1 / 8],
  B: ['data', 1],
  KB: ['data', 1e3],
  MB: ['data', 1e6],
  GB: ['data', 1e9],
  TB: ['data', 1e12],
  KiB: ['data', 1024],
  MiB: ['data', 1024 ** 2],
  GiB: ['data', 1024 ** 3],
  TiB: ['data', 1024 ** 4],
  // time: second
  ns: ['time', 1e-9],
  us: ['time', 1e-6],
  ms: ['time', 1e-3],
  s: ['time', 1],
  min: ['time', 60],
  h: ['time', 3600],
  d: ['time', 86_400],
  wk: ['time', 604_800],
};

/** other spellings of the table's names */
const ALIASES: Record<string, string> = {
  '°C': 'C',
  degC: 'C',
  celsius: 'C',
  '°F': 'F',
  degF: 'F',
  fahrenheit: 'F',
  kelvin: 'K',
  µm: 'um',
  kB: 'KB',
  kmh: 'km/h',
  kph: 'km/h',
  mps: 'm/s',
  kt: 'kn',
  knot: 'kn',
  byte: 'B',
  sec: 's',
  hr: 'h',
  day: 'd',
  µs: 'us',
};

const UNITS: ReadonlyMap<string, Unit> = new Map(
  [...Object.entries(TABLE), ...Object.entries(ALIASES).map(([a, n]) => [a, TABLE[n]!] as const)].map(
    ([name, [dimension, factor]]) => [name, { dimension, factor }],
  ),
);

/** every unit name and alias, table order */
export function knownUnits(): string[] {
  return [...UNITS.keys()];
}

/** the dimension of a unit, undefined when it is not known */
export function dimensionOf(unit: string): Dimension | undefined {
  return UNITS.get(unit)?.dimension;
}

const canonical = (unit: string): string => ALIASES[unit] ?? unit;

function toKelvin(unit: string, v: number): number {
  const u = canonical(unit);
  return u === 'C' ? v + 273.15 : u === 'F' ? ((v - 32) * 5) / 9 + 273.15 : v;
}

function fromKelvin(unit: string, k: number): number {
  const u = canonical(unit);
  return u === 'C' ? k - 273.15 : u === 'F' ? ((k - 273.15) * 9) / 5 + 32 : k;
}

/**
 * The conversion from one unit to another, checked once: an unknown unit or two dimensions throw a
 * TalonError('BAD_REQUEST') naming `path` (`pipelines.p1.transforms.t.from`).
 */
export function unitConverter(from: string, to: string, path = 'convert'): (value: number) => number {
  const a = UNITS.get(from);
  const b = UNITS.get(to);
  for (const [key, name, unit] of [
    ['from', from, a],
    ['to', to, b],
  ] as const) {
    if (unit === undefined) {
      const near = knownUnits().filter((u) => u.toLowerCase() === String(name).toLowerCase());
      throw new TalonError(
        'BAD_REQUEST',
        `${path}.${key}: ${JSON.stringify(name)} is not a known unit` +
          (near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : '') +
          ` (have: ${knownUnits().join(', ')})`,
      );
    }
  }
  if (a!.dimension !== b!.dimension)
    throw new TalonError(
      'BAD_REQUEST',
      `${path}: cannot convert ${from} (${a!.dimension}) to ${to} (${b!.dimension}); ` +
        `the ${a!.dimension} units are ${knownUnits()
          .filter((u) => UNITS.get(u)!.dimension === a!.dimension)
          .join(', ')}`,
    );
  if (a!.dimension === 'temperature') return (v) => fromKelvin(to, toKelvin(from, v));
  const fa = a!.factor;
  const fb = b!.factor;
  return (v) => (v * fa) / fb;
}

/** one value converted (unitConverter for a single use) */
export function convertUnit(value: number, from: string, to: string): number {
  return unitConverter(from, to)(value);
}
