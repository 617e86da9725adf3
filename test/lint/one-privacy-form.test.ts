/**
 * The lint rule that keeps one privacy form for class members (./one-privacy-form.grit, wired
 * into biome.jsonc): run through the project's own Biome configuration on a probe file, it flags
 * every TypeScript `private` member, parameter properties included, and nothing else
 * (`protected` is a subclass's API, not privacy). If the plugin stopped loading or matching, `npm run lint` would pass silently; this fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const BIOME = join(ROOT, 'node_modules', '.bin', 'biome');

const PROBE = `export class Probe {
  private a = 1;
  protected b = 2;
  private static c = 3;
  private get g(): number { return this.a; }
  protected h(): void {}
  #ok = 4;
  public e = 5;
  readonly f = 6;
  private constructor(private readonly x: number, protected y: string, public z: number) {}
  static make(): Probe { return new Probe(1, '', 2); }
  text(): string { return 'private a; protected b' + String(this.#ok); }
}
export abstract class Base {
  protected abstract hook(): void;
  protected constructor() {}
}
`;

interface Diagnostic {
  category: string;
  location: { start: { line: number; column: number } };
}

test('the one-privacy-form rule flags TypeScript private members and parameter properties, not constructors, protected hooks or #private', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-lint-'));
  try {
    writeFileSync(join(dir, 'probe.ts'), PROBE);
    const r = spawnSync(
      BIOME,
      ['lint', `--config-path=${join(ROOT, 'biome.jsonc')}`, '--reporter=json', '--max-diagnostics=none', 'probe.ts'],
      { cwd: dir, encoding: 'utf8' },
    );
    assert.notEqual(r.status, 0, 'the probe must fail the lint');
    const out = JSON.parse(r.stdout) as { diagnostics: Diagnostic[] };
    const flagged = out.diagnostics
      .filter((d) => d.category === 'plugin')
      .map((d) => `${d.location.start.line}:${d.location.start.column}`);
    assert.deepEqual(flagged.sort(), ['10:23', '2:3', '4:3', '5:3'].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
