/**
 * The agent's MQTT link against a real mosquitto run from the files `talon fleet init` writes,
 * reloaded the way `talon fleet provision` reloads it (a new password line, then SIGHUP to the
 * pid in its pid file): mosquitto drops a client whose credential changed, the reconnect is
 * refused (CONNACK 135), and the link must keep trying with backoff rather than give up for good.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initFleet, type Fleet } from '../../../provisioning/fleet/keys.ts';
import { brokerPaths, reloadBroker, setBrokerUser } from '../../../provisioning/fleet/broker.ts';
import { MqttLink } from '../../../provisioning/device/link.ts';
import { startMosquitto, type Mosquitto } from '../../helpers/mosquitto.ts';
import { freePort } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';

let dir: string;
let fleet: Fleet;
let broker: Mosquitto;
const DEV = 'tlinklinklinklink';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-link-'));
  const port = await freePort();
  fleet = initFleet(join(dir, 'fleet'), {
    fleetId: 'links',
    brokerUrl: `mqtt://127.0.0.1:${port}`,
    ...(process.getuid?.() === 0 ? { brokerRunAs: 'root' } : {}),
  });
  broker = await startMosquitto({ configFile: brokerPaths(fleet.dir).conf, port });
});

after(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a credential changed under a connected link (fleet broker SIGHUP): dropped, refused, retried with backoff, back once it is valid again', {
  timeout: 60_000,
}, async () => {
  setBrokerUser(fleet.dir, DEV, 'pw-1');
  assert.equal(reloadBroker(fleet.dir), 'reloaded');
  const refusals: number[] = [];
  let connects = 0;
  const link = new MqttLink({
    url: fleet.brokerUrl,
    username: DEV,
    password: 'pw-1',
    clientId: DEV,
    subscribe: [],
    backoff: { initialMs: 50, maxMs: 400 },
    onConnect: () => {
      connects++;
    },
    onMessage: () => undefined,
    onRefused: (code) => refusals.push(code),
  });
  await link.start();
  try {
    // the reload is asynchronous: the link retries until the new user exists
    await waitFor(() => link.connected, 'the link connected with the new device user', 20_000);
    const first = connects;

    // the operator issues another password (a re-provision) and reloads: mosquitto drops the client
    setBrokerUser(fleet.dir, DEV, 'pw-2');
    assert.equal(reloadBroker(fleet.dir), 'reloaded');
    await waitFor(() => !link.connected, 'dropped by the reload');
    await waitFor(() => refusals.length >= 3, 'the old password refused, again and again (not given up after one)');
    assert.ok(
      refusals.every((c) => c === 134 || c === 135),
      JSON.stringify(refusals),
    );
    assert.ok(link.refusals >= 3);

    // the credential is valid again (here: the old password back): the link gets in without a restart
    setBrokerUser(fleet.dir, DEV, 'pw-1');
    assert.equal(reloadBroker(fleet.dir), 'reloaded');
    await waitFor(() => link.connected && connects > first, 'reconnected after the refusals', 20_000);
    assert.equal(link.refusals, 0);
  } finally {
    await link.stop();
  }
});
