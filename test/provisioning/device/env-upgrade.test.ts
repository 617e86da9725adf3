/**
 * TALON_HTTP / TALON_MQTT are laid over the generation in force and kept out of the file's hash.
 * A device that ran an older Talon with them set has the file's hash stored *with* them: the
 * first start after the upgrade must see the same file, not a changed one that would replace
 * the provisioned generation with the bootstrap config.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../runtime/store/store.ts';
import { ConfigGenerations } from '../../../runtime/config/generations.ts';
import { resolveStartConfig } from '../../../runtime/config/apply.ts';
import { loadConfig, withEnvOverrides } from '../../../runtime/config/load.ts';

test('upgrading a provisioned device that runs with TALON_HTTP: the provisioned generation stays in force, the variable over it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-env-upgrade-'));
  const store = await Store.open(join(dir, 'data'));
  try {
    const file = join(dir, 'talon.json');
    writeFileSync(
      file,
      JSON.stringify({ dataDir: './data', deviceName: 'generic', http: { host: '127.0.0.1', port: 8080 } }),
    );
    const env = { TALON_HTTP: '127.0.0.1:9090' };
    const gens = new ConfigGenerations(store);
    // what an older Talon stored: the file's hash with the variable in it
    const old = loadConfig({ file, env }).config;
    assert.equal(old.http.port, 9090);
    await resolveStartConfig(store, gens, old, 'file + TALON_HTTP');
    // then a fleet bundle became the generation in force
    await gens.apply(
      { ...old, deviceName: 'vine-row-3', http: { ...old.http, port: 8081 } },
      { actor: 'provisioning', source: 'provisioning v1' },
    );

    // this version: the file alone, the variable over whatever is in force
    const base = loadConfig({ file, env: {} }).config;
    assert.deepEqual(withEnvOverrides(base, env), old, 'the overlay is what loading the file with the variable gives');
    const first = await resolveStartConfig(store, gens, base, 'file', withEnvOverrides(base, env));
    assert.equal(first.fromFile, false, 'the file did not change');
    assert.equal(first.config.deviceName, 'vine-row-3');
    assert.equal(withEnvOverrides(first.config, env).http.port, 9090);
    // and from then on the file's own hash is the one kept
    const second = await resolveStartConfig(store, gens, base, 'file');
    assert.equal(second.fromFile, false);
    assert.equal(second.config.deviceName, 'vine-row-3');
    assert.equal((await gens.current())?.source, 'provisioning v1');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
