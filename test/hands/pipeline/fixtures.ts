/**
 * What the Data Pipeline Hand's tests share: the readings of a public traffic data set (../shared/datasets/nab,
 * realTraffic/speed_6005.csv: timestamp,value) and a source's state kept in memory (values copied in and out, as the
 * Hand's store does through JSON).
 */
import { readFileSync } from 'node:fs';
import type { SourceState } from '../../../hands/pipeline/sources/types.ts';
import { nabFile } from '../../helpers/datasets.ts';

const CSV = nabFile('realTraffic/speed_6005.csv');

/** every reading of speed_6005.csv, in file order: the timestamp as written ("2015-09-08 11:39:00") and the value */
export function nabRows(): Array<{ timestamp: string; value: number }> {
  return readFileSync(CSV, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [timestamp, value] = line.split(',');
      return { timestamp: timestamp!, value: Number(value) };
    });
}

/** a source's state in a Map (exposed as `map` for the tests' checks) */
export function memoryState(): SourceState & { map: Map<string, unknown> } {
  const map = new Map<string, unknown>();
  return {
    map,
    async get<T>(key: string) {
      return structuredClone(map.get(key)) as T | undefined;
    },
    async put(key: string, value: unknown) {
      map.set(key, structuredClone(value));
    },
  };
}
