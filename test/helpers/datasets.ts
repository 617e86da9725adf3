/**
 * Where the public labelled data lives (../shared/datasets): beside the checkout (as CI lays it out), else the
 * workplace's /work/shared; $NAB_DIR wins for NAB. Tests read real data from here rather than data made up.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** $NAB_DIR, else shared/datasets/nab beside the checkout, else the workplace's */
export const NAB_DIR =
  process.env.NAB_DIR ??
  [join(import.meta.dirname, '..', '..', '..', 'shared', 'datasets', 'nab'), '/work/shared/datasets/nab'].find((d) =>
    existsSync(join(d, 'combined_windows.json')),
  ) ??
  '/work/shared/datasets/nab';

/** a file of NAB's data folder: nabFile('realTraffic/speed_6005.csv') */
export const nabFile = (rel: string): string => join(NAB_DIR, 'data', rel);
