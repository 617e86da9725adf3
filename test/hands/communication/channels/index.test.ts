/** The channel registry (hands/communication/channels/index.ts): schemes to kinds, openChannel's errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CHANNEL_KINDS,
  kindOfScheme,
  knownSchemes,
  openChannel,
} from '../../../../hands/communication/channels/index.ts';
import { ChannelConfigError } from '../../../../hands/communication/channels/types.ts';
import { testEnv } from './contract.ts';

describe('channel registry', () => {
  it('every scheme belongs to one kind, and every kind has a form and a direction', () => {
    const seen = new Set<string>();
    for (const k of CHANNEL_KINDS) {
      assert.ok(k.form.includes('://'), `${k.kind}: form`);
      assert.ok(k.direction === 'both' || k.direction === 'out');
      for (const s of k.schemes) {
        assert.ok(!seen.has(s), `${s} twice`);
        seen.add(s);
      }
    }
    assert.equal(kindOfScheme('NTFYS')?.kind, 'ntfy');
    assert.equal(kindOfScheme('json://')?.kind, 'webhook');
    assert.equal(kindOfScheme('pover')?.kind, 'pushover');
    assert.equal(kindOfScheme('nope'), undefined);
  });

  it('opens a channel from its URL and secrets', async () => {
    const ch = await openChannel('phone', 'gotify://gotify.lan/{secret:gt}', testEnv(), async (n) =>
      n === 'gt' ? 'tok' : undefined,
    );
    assert.deepEqual([ch.name, ch.kind], ['phone', 'gotify']);
  });

  it('an unknown scheme lists the known ones; a missing secret is named', async () => {
    await assert.rejects(
      openChannel('x', 'carrierpigeon://loft/1', testEnv(), async () => undefined),
      (e: Error) => {
        assert.ok(e instanceof ChannelConfigError);
        assert.match(e.message, /carrierpigeon:\/\//);
        for (const s of ['ntfy', 'mqtt', 'json', 'msteams'])
          assert.ok(knownSchemes().includes(s) && e.message.includes(s));
        return true;
      },
    );
    await assert.rejects(
      openChannel('x', 'ntfys://{secret:missing}@ntfy.sh/t', testEnv(), async () => undefined),
      /"missing" does not exist/,
    );
  });
});
