/**
 * Where the header's BCM numbers start in the sysfs GPIO numbering. Recent Raspberry Pi
 * kernels number sysfs GPIOs from the chip's `base`, not from 0 (BCM 17 is gpio529 on a Pi 4,
 * whose pinctrl-bcm2711 chip has base 512; a Pi 5's pinctrl-rp1 starts at 571), so configs
 * name BCM numbers and the driver adds the base it finds in
 * <sysfs>/class/gpio/gpiochip<N>/{label,base,ngpio}.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';

export interface GpioChip {
  /** directory name, e.g. gpiochip512 */
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

/** the SoC pin controllers of the Raspberry Pi boards, best first */
export const PI_PINCTRL_LABELS = ['pinctrl-bcm2711', 'pinctrl-bcm2835', 'pinctrl-rp1', 'pinctrl-bcm2712'];

export function listChips(sysRoot = '/sys'): GpioChip[] {
  const dir = join(sysRoot, 'class', 'gpio');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^gpiochip\d+$/.test(n));
  } catch (err) {
    throw new TalonError(
      'SENSOR_UNAVAILABLE',
      `no GPIO on this machine: ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      { cause: err },
    );
  }
  const chips: GpioChip[] = [];
  for (const name of names) {
    try {
      const read = (f: string): string => readFileSync(join(dir, name, f), 'utf8').trim();
      const base = Number(read('base'));
      const ngpio = Number(read('ngpio'));
      if (!Number.isInteger(base) || base < 0 || !Number.isInteger(ngpio) || ngpio <= 0) continue;
      chips.push({ name, label: read('label'), base, ngpio });
    } catch {
      // a chip without readable attributes is not one we can drive
    }
  }
  return chips.sort((a, b) => a.base - b.base);
}

/**
 * The chip the header pins live on: the one whose label is `label` when given, else a
 * Raspberry Pi pin controller, else the chip with the lowest base.
 */
export function findHeaderChip(sysRoot = '/sys', label?: string): GpioChip {
  const chips = listChips(sysRoot);
  if (chips.length === 0)
    throw new TalonError('SENSOR_UNAVAILABLE', `no GPIO chip under ${join(sysRoot, 'class', 'gpio')}`);
  if (label !== undefined) {
    const c = chips.find((x) => x.label === label);
    if (!c)
      throw new TalonError(
        'SENSOR_UNAVAILABLE',
        `no GPIO chip labelled ${JSON.stringify(label)} (found: ${chips.map((x) => x.label).join(', ')})`,
      );
    return c;
  }
  for (const l of PI_PINCTRL_LABELS) {
    const c = chips.find((x) => x.label === l);
    if (c) return c;
  }
  return chips[0]!;
}
