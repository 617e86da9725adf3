/**
 * The Communication Hand on the real daemon, as a user runs it from the README: channels from URLs with sealed
 * secrets (Telegram and a webhook through local servers that speak their wire formats, e-mail through a real SMTP
 * server and a real Dovecot), `talon notify`, rules with an escalation chain run as the Scheduling Hand's jobs,
 * commands back from allow-listed people (and refusals for others), a signed webhook in, the notify tool — and the
 * daemon killed mid-send and mid-receive: nothing lost, nothing handled twice.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawnSync } from 'node:child_process';
import mqtt from 'mqtt';
import { api, cli, ensureBuilt, poll, spawnTalon, startDaemon, TALON, type Daemon } from '../helpers/daemon.ts';
import { startTelegramFake, type TelegramFake } from '../fixtures/platforms/telegram.ts';
import { startSmtpFake, type SmtpFake } from '../fixtures/platforms/smtp.ts';
import { webhookSignature } from '../../hands/communication/channels/webhook.ts';

const HOOK_SECRET = 'hook-secret-0123456789abcdef';

/** a webhook receiver we control: records every body, can hold the next request open (a send in flight) */
interface Sink {
  port: number;
  bodies: Array<{ id: string; text: string; headers: IncomingMessage['headers'] }>;
  /** the next request is held open (never answered) until release() */
  holdNext(): void;
  held(): boolean;
  close(): Promise<void>;
}

async function startSink(): Promise<Sink> {
  let hold = false;
  const open: ServerResponse[] = [];
  const s: Sink = {
    port: 0,
    bodies: [],
    holdNext: () => {
      hold = true;
    },
    held: () => open.length > 0,
    close: () =>
      new Promise((r) => {
        for (const res of open) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const j = JSON.parse(body) as { id: string; text: string };
      s.bodies.push({ id: j.id, text: j.text, headers: req.headers });
      if (hold) {
        hold = false;
        open.push(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.port = (server.address() as { port: number }).port;
  return s;
}

function setSecret(dataDir: string, name: string, value: string): void {
  const r = spawnSync(process.execPath, [TALON, 'secrets', 'set', name, '--data', dataDir], {
    input: value,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
}

describe('the Communication Hand on the daemon', () => {
  let tg: TelegramFake;
  let mail: SmtpFake;
  let sink: Sink;
  let d: Daemon;
  let config: Record<string, unknown>;

  const tgTexts = async (): Promise<string[]> => (await tg.sent()).map((m) => m.text);
  const audit = async (action: string): Promise<Array<{ subject: string; decision: string; detail?: any }>> =>
    (await api(d, 'GET', `/api/v1/audit?action=${encodeURIComponent(action)}&limit=200`)).body.items;

  before(async () => {
    ensureBuilt();
    tg = await startTelegramFake({ pollSeconds: 2 });
    mail = await startSmtpFake({ imap: true });
    sink = await startSink();
    const first = await startDaemon({ hands: [], drivers: [] });
    assert.equal(await first.stop(), 0);
    for (const [k, v] of Object.entries({ ...tg.secrets, ...mail.secrets, hook_secret: HOOK_SECRET }))
      setSecret(first.dataDir, k, v);
    config = {
      drivers: [],
      hands: [
        // its default grants: the escalation jobs publish on hands/comms/escalate
        { name: 'scheduler', module: 'scheduling' },
        // asked in words by the comms Hand (free text from a person): its chat answers from its state
        { name: 'monitoring', module: 'monitoring' },
        {
          name: 'comms',
          module: 'communication',
          capabilities: {
            network: { hosts: ['127.0.0.1'], raw: true },
            secrets: ['tg_token', 'mail_password', 'hook_secret', 'missing_token'],
            approvals: true,
          },
          settings: {
            channels: {
              tg: { url: tg.url, allow: [tg.chatId] },
              mail: { url: mail.url, allow: ['alice@example.org'] },
              hook: { url: `json://127.0.0.1:${sink.port}/in?secret={secret:hook_secret}`, allow: ['ci'] },
              broken: 'tgram://{secret:missing_token}/1',
            },
            people: { ada: ['tg'], ops: ['mail'] },
            rules: [
              {
                name: 'pager',
                match: { priority: ['critical'] },
                to: ['ada'],
                escalate: { steps: [{ to: ['ops'], afterMin: 0.05 }] },
              },
              { name: 'hooked', match: { tags: ['hook'] }, to: ['hook'] },
            ],
            default: ['tg'],
            commands: { freeText: { hand: 'monitoring' } },
          },
        },
      ],
    };
    d = await startDaemon(config, { dataDir: first.dataDir });
    await poll('the comms Hand runs', async () => {
      const r = await api(d, 'GET', '/api/v1/channels');
      return r.status === 200 && r.body.channels.length === 4;
    });
  });

  after(async () => {
    await d?.stop().catch(() => {});
    await sink?.close();
    await tg?.close();
    await mail?.close();
  });

  test('channels: each with its health; a missing secret is named, the others run', async () => {
    const r = await api(d, 'GET', '/api/v1/channels');
    const by = Object.fromEntries((r.body.channels as Array<{ name: string }>).map((c) => [c.name, c])) as Record<
      string,
      any
    >;
    assert.equal(by.broken.health, 'error');
    assert.match(
      by.broken.error,
      /the secret "missing_token" does not exist; set it with `talon secrets set missing_token`/,
    );
    assert.equal(by.tg.kind, 'telegram');
    assert.equal(by.mail.kind, 'email');
    assert.ok(!JSON.stringify(r.body).includes(tg.secrets.tg_token!), 'no secret in the API');
    const list = cli(['channels', 'list', '--data', d.dataDir]);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /broken\s+telegram \(in\+out\)\s+error\s+0\s+.*missing_token/);
  });

  test('talon notify: through the default route to Telegram, audited with the body as a hash', async () => {
    const r = spawnTalon(['notify', 'Pump 2 stopped', '--priority', 'high', '--data', d.dataDir]);
    assert.equal(await r.exited, 0, r.output());
    await poll('the message on Telegram', async () => (await tgTexts()).some((t) => t.includes('Pump 2 stopped')));
    const sent = await poll('the audit entry', async () => {
      const e = await audit('communication.message.sent');
      return e.find((x) => x.subject === 'tg');
    });
    assert.match(sent.detail.body, /^[0-9a-f]{32}$/);
    assert.equal(sent.detail.rule, 'default');
    const bad = cli(['notify', 'x', '--priority', 'urgent', '--data', d.dataDir]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--priority must be one of low, normal, high, critical/);
    const unknownTo = await api(d, 'POST', '/api/v1/messages', { text: 'x', to: ['carol'] });
    assert.equal(unknownTo.status, 400);
    assert.match(unknownTo.body.error.message, /"carol" is neither a channel nor a person/);
  });

  test('the notify tool hands its message to the Hand', async () => {
    const r = cli([
      'tools',
      'call',
      'notify',
      '--input',
      JSON.stringify({ text: 'from the tool' }),
      '--data',
      d.dataDir,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"delivered": true/);
    await poll('the tool message on Telegram', async () => (await tgTexts()).some((t) => t.includes('from the tool')));
  });

  test('commands: an allowed sender gets status; an unknown one is refused, audited, never answered', async () => {
    const before = (await tg.sent()).length;
    await tg.inject('status');
    await poll('the status answer', async () => (await tgTexts()).slice(before).some((t) => t.includes('outbox:')));
    await tg.inject('status', '999');
    const refused = await poll('the refusal in the audit', async () =>
      (await audit('communication.message.refused')).find((e) => e.detail?.from === '999'),
    );
    assert.equal(refused.subject, 'tg');
    const inbox = await api(d, 'GET', '/api/v1/messages?box=inbox&limit=50');
    const unknown = (inbox.body.messages as Array<{ from: string; sender: string }>).find((m) => m.from === '999');
    assert.equal(unknown?.sender, 'unknown');
    assert.ok(!(await tg.sent()).some((m) => m.to === '999'), 'nothing was sent to the unknown sender');
  });

  test("free text from an allowed sender gets the Monitoring Hand's chat answer", async () => {
    const before = (await tg.sent()).length;
    await tg.inject('how is the greenhouse doing?');
    const answer = await poll('the answer', async () =>
      (await tgTexts()).slice(before).find((t) => /active alert/i.test(t)),
    );
    assert.match(answer, /No active alerts/);
  });

  test('escalation: critical pages Ada, no ack moves it to ops by mail (a scheduler job), an e-mail ack stops it', async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
      username: 'token',
      password: d.token(),
      reconnectPeriod: 0,
    });
    try {
      await c.publishAsync(
        `talon/${d.deviceId()}/notify/critical`,
        JSON.stringify({ text: 'Boiler pressure 3.4 bar' }),
        {
          qos: 1,
        },
      );
    } finally {
      await c.endAsync();
    }
    const page = await poll('the page on Telegram', async () =>
      (await tgTexts()).find((t) => t.includes('Boiler pressure')),
    );
    const ackId = /ack ([0-9A-Z]{4,6})/.exec(page)?.[1];
    assert.ok(ackId, page);
    // the next step is a job of the Scheduling Hand (put over its task inbox once the page is queued)
    await poll('the escalation job', async () => {
      const jobs = await api(d, 'GET', '/api/v1/schedules');
      return (jobs.body.jobs as Array<{ id: string }>).some((j) => j.id.startsWith(`esc-${ackId.toLowerCase()}`));
    });
    const mailed = await poll('the escalation by mail', async () =>
      mail.mails().find((m) => (m.text ?? '').includes('Boiler pressure')),
    );
    assert.ok(mailed);
    await mail.inject!(`ack ${ackId}`, 'alice@example.org');
    const esc = await poll('acknowledged', async () => {
      const r = await api(d, 'GET', '/api/v1/messages/escalations?all=true');
      return (r.body.escalations as Array<{ ackId: string; acked?: { by: string } }>).find(
        (e) => e.ackId === ackId && e.acked,
      );
    });
    assert.match(esc.acked!.by, /alice@example\.org/);
    const again = await api(d, 'POST', `/api/v1/messages/escalations/${ackId}/ack`, {});
    assert.equal(again.status, 200);
    assert.equal(again.body.already, true);
  });

  test('a signed webhook in is journalled and answered; a forged one is refused and audited', async () => {
    const body = JSON.stringify({ id: 'evt-1', from: 'ci', text: 'status' });
    const ts = String(Date.now());
    const post = (sig: string) =>
      fetch(`http://127.0.0.1:${d.httpPort}/api/v1/channels/hook/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-talon-timestamp': ts, 'x-talon-signature': sig },
        body,
      });
    const ok = await post(webhookSignature(HOOK_SECRET, ts, body));
    assert.equal(ok.status, 200, await ok.clone().text());
    await poll('the answer posted to the hook', async () => sink.bodies.some((b) => b.text.includes('outbox:')));
    const forged = await post(webhookSignature('not-the-secret-000000', ts, body));
    assert.equal(forged.status, 400);
    assert.match(((await forged.json()) as { error: { message: string } }).error.message, /webhook refused/);
    await poll('the refusal audited', async () =>
      (await audit('communication.message.refused')).some((e) => e.subject === 'hook'),
    );
  });

  test('/metrics has the Hand’s series', async () => {
    const r = await fetch(`http://127.0.0.1:${d.httpPort}/metrics`, {
      headers: { authorization: `Bearer ${d.token()}` },
    });
    const text = await r.text();
    assert.match(text, /talon_comms_messages_total\{[^}]*channel="tg"[^}]*outcome="sent"[^}]*\} [1-9]/);
    assert.match(text, /talon_comms_channel_up\{[^}]*channel="broken"[^}]*\} 0/);
  });

  test('killed mid-send: the message goes again after the restart, under the same id', async () => {
    sink.holdNext();
    const n = await api(d, 'POST', '/api/v1/messages', { text: 'survives a crash', tags: ['hook'] });
    assert.equal(n.status, 200, JSON.stringify(n.body));
    await poll('the send in flight', async () => sink.held());
    d.proc.kill('SIGKILL');
    await d.exited;
    d = await startDaemon({}, { configFile: d.configFile });
    const copies = await poll('sent again after the restart', async () => {
      const c = sink.bodies.filter((b) => b.text.includes('survives a crash'));
      return c.length >= 2 ? c : undefined;
    });
    assert.equal(new Set(copies.map((c) => c.id)).size, 1, 'the same id both times: the receiver can drop the copy');
    const hist = await poll('in the history', async () => {
      const r = await api(d, 'GET', '/api/v1/messages?box=history&limit=100');
      return (r.body.messages as Array<{ text: string; outcome: string; maybeDuplicate?: boolean }>).find(
        (m) => m.text.includes('survives a crash') && m.outcome === 'sent',
      );
    });
    assert.equal(hist.maybeDuplicate, true);
  });

  test('killed mid-receive: every message is journalled once and answered', async () => {
    const before = (await api(d, 'GET', '/api/v1/messages?box=inbox&limit=500')).body.messages.length as number;
    for (let i = 0; i < 5; i++) await tg.inject(`status ${i}`);
    // give the poll a moment to take some (not necessarily all) of them, then kill
    await poll('a poll took updates', async () => tg.pending().length < 5, 10_000).catch(() => {});
    d.proc.kill('SIGKILL');
    await d.exited;
    d = await startDaemon({}, { configFile: d.configFile });
    const rows = await poll('all five journalled', async () => {
      const r = await api(d, 'GET', '/api/v1/messages?box=inbox&limit=500');
      const m = (r.body.messages as Array<{ text: string; platformId: string }>).filter((x) =>
        /^status \d$/.test(x.text),
      );
      return m.length >= 5 && r.body.messages.length >= before + 5 ? m : undefined;
    });
    const ids = rows.map((r) => r.platformId);
    assert.equal(new Set(ids).size, ids.length, `a message journalled twice: ${ids.join(', ')}`);
    assert.equal(rows.length, 5);
  });
});
