/** The source files below a folder (node_modules and dot folders skipped), for the tests that scan the tree for a rule's copies. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function* sourceFiles(dir: string, ext: RegExp = /\.tsx?$/): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* sourceFiles(p, ext);
    else if (ext.test(name)) yield p;
  }
}
