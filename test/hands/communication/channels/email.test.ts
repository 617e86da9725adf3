/**
 * The e-mail channel against a real SMTP server (smtp-server) and a real Dovecot: the channel contract, then what
 * is e-mail's own (Message-IDs, quoted replies, auto-submitted mail, the UID cursor across restarts and a rebuilt
 * mailbox, IDLE).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { email, replyText } from '../../../../hands/communication/channels/email.ts';
import type { Channel, InMessage } from '../../../../hands/communication/channels/types.ts';
import { ChannelConfigError, ChannelError } from '../../../../hands/communication/channels/types.ts';
import { parseChannelUrl } from '../../../../hands/communication/channels/url.ts';
import { type SmtpFake, startSmtpFake } from '../../../fixtures/platforms/smtp.ts';
import { channelContract, makeChannel, testEnv } from './contract.ts';

channelContract(email, () => startSmtpFake({ imap: true }));

let seq = 0;
const out = (text: string, over: Record<string, unknown> = {}) => ({
  id: `out-${++seq}-${Date.now()}`,
  text,
  priority: 'normal' as const,
  tags: [],
  ...over,
});

function rawMail(o: { from?: string; subject?: string; body: string; headers?: string[] }): string {
  return [
    `From: ${o.from ?? 'Alice Person <alice@example.org>'}`,
    'To: talon@talon.test',
    `Subject: ${o.subject ?? 'hello'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <t.${Date.now()}.${++seq}@example.org>`,
    ...(o.headers ?? []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    o.body,
    '',
  ].join('\r\n');
}

/** receives until `pred` holds for the messages so far (bounded), returning them and the cursor after them */
async function receiveUntil(
  ch: Channel,
  cursor: string | undefined,
  pred: (got: InMessage[]) => boolean,
  ms = 20_000,
): Promise<{ got: InMessage[]; cursor: string | undefined }> {
  const got: InMessage[] = [];
  const deadline = AbortSignal.timeout(ms);
  while (!pred(got)) {
    const b = await ch.receive!(cursor, deadline);
    got.push(...b.messages);
    cursor = b.cursor;
  }
  return { got, cursor };
}

/** a receive that must find nothing: it waits until the bound and is aborted */
async function receivesNothing(ch: Channel, cursor: string | undefined, ms = 1500): Promise<void> {
  try {
    const b = await ch.receive!(cursor, AbortSignal.timeout(ms));
    assert.deepEqual(b.messages, [], `expected nothing new, got ${JSON.stringify(b.messages)}`);
  } catch (err) {
    assert.equal((err as Error).name, 'TimeoutError', `expected the bound to end the wait, got ${String(err)}`);
  }
}

async function failure(p: Promise<unknown>): Promise<ChannelError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ChannelError, `expected a ChannelError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a failure');
}

describe('email channel on smtp-server + Dovecot', () => {
  let fake: SmtpFake;
  const open: Channel[] = [];
  const channel = async (url = fake.url, secrets = fake.secrets, env = testEnv()) => {
    const ch = await makeChannel(email, { url, secrets }, env);
    open.push(ch);
    return ch;
  };
  before(async () => {
    fake = await startSmtpFake({ imap: true });
  });
  after(async () => {
    for (const ch of open) await ch.close?.();
    await fake?.close();
  });

  it('a wrong password is an auth error, on SMTP and on IMAP', async () => {
    const ch = await channel(fake.url, { mail_password: 'not-the-password' });
    const e = await failure(ch.send(out('hi'), AbortSignal.timeout(15_000)));
    assert.equal(e.kind, 'auth', e.message);
    assert.equal(e.status, 535);
    const e2 = await failure(ch.receive!(undefined, AbortSignal.timeout(15_000)));
    assert.equal(e2.kind, 'auth', e2.message);
    const p = await failure(ch.probe!(AbortSignal.timeout(15_000)));
    assert.equal(p.kind, 'auth');
  });

  it('probe() logs in to SMTP and IMAP', async () => {
    const ch = await channel();
    await ch.probe!(AbortSignal.timeout(15_000));
  });

  it('the Message-ID carries the outbox id, the subject the title, the HTML part the Markdown', async () => {
    const ch = await channel();
    const m = out('**Disk** almost full: see [the page](https://example.org/x) <now>', {
      title: 'Disk alert',
      priority: 'high',
    });
    const r = await ch.send(m, AbortSignal.timeout(15_000));
    const mail = fake.mails().at(-1)!;
    assert.equal(mail.messageId, `<${m.id}@talon.comms>`);
    assert.deepEqual(r.platformIds, [mail.messageId]);
    assert.equal(mail.subject, 'Disk alert');
    assert.deepEqual(mail.to, ['person@example.org']);
    assert.match(mail.text, /^Disk almost full: see the page \(https:\/\/example.org\/x\) <now>$/);
    assert.match(mail.html, /<b>Disk<\/b>/);
    assert.match(mail.html, /<a href="https:\/\/example.org\/x">the page<\/a>/);
    assert.match(mail.html, /&lt;now&gt;/);
    assert.equal(mail.parsed.headers.get('auto-submitted'), 'auto-generated');
    assert.equal(mail.parsed.headers.get('priority'), 'high');
    // a retry of the same outbox entry carries the same Message-ID
    await ch.send({ ...m, retry: true }, AbortSignal.timeout(15_000));
    assert.equal(fake.mails().at(-1)!.messageId, mail.messageId);
  });

  it('a message over maxChars goes as several mails with "(part i/n)" subjects and ids', async () => {
    const ch = await channel();
    const before = fake.mails().length;
    const m = out(`first line\n\n${'word '.repeat(Math.ceil((ch.maxChars * 1.5) / 5))}`);
    const r = await ch.send(m, AbortSignal.timeout(30_000));
    const mails = fake.mails().slice(before);
    const n = mails.length;
    assert.ok(n >= 2, `expected 2 or more mails, got ${n}`);
    assert.deepEqual(
      mails.map((x) => x.subject),
      mails.map((_, i) => `first line (part ${i + 1}/${n})`),
    );
    assert.deepEqual(
      r.platformIds,
      mails.map((_, i) => `<${m.id}${i === 0 ? '' : `.${i + 1}`}@talon.comms>`),
    );
    assert.deepEqual(
      mails.map((x) => x.messageId),
      r.platformIds,
    );
  });

  it('sends to the message\'s own "to" over the URL\'s targets', async () => {
    const ch = await channel();
    await ch.send(out('to bob', { to: 'bob@example.net' }), AbortSignal.timeout(15_000));
    assert.deepEqual(fake.mails().at(-1)!.to, ['bob@example.net']);
    const e = await failure(ch.send(out('to nobody', { to: 'not an address' }), AbortSignal.timeout(15_000)));
    assert.equal(e.kind, 'permanent');
  });

  it('a reply with quoted text yields only the new lines; an empty body yields the subject', async () => {
    const ch = await channel();
    const start = await ch.receive!(undefined, AbortSignal.timeout(15_000));
    await fake.dovecot!.append(
      rawMail({
        subject: 'Re: Disk alert K3F9',
        body: [
          'ack K3F9',
          '',
          'On Thu, 3 Dec 2026 at 12:00, comms <talon@talon.test> wrote:',
          '> Disk almost full (K3F9)',
          '> reply "ack K3F9" to acknowledge',
          '',
          '-- ',
          'Alice, on the phone',
        ].join('\r\n'),
      }),
    );
    await fake.dovecot!.append(rawMail({ subject: 'Re: status', body: '' }));
    const { got } = await receiveUntil(ch, start.cursor, (g) => g.length >= 2);
    assert.equal(got[0]!.text, 'ack K3F9');
    assert.equal(got[0]!.from, 'alice@example.org');
    assert.equal(got[0]!.fromName, 'Alice Person');
    assert.equal(got[0]!.replyTo, 'alice@example.org');
    assert.equal(got[0]!.fromBot, false);
    assert.equal(got[1]!.text, 'status');
  });

  it("auto-submitted mail, bulk mail and the channel's own mail are fromBot; Reply-To is where answers go", async () => {
    const ch = await channel();
    const start = await ch.receive!(undefined, AbortSignal.timeout(15_000));
    await fake.dovecot!.append(rawMail({ body: 'I am on vacation', headers: ['Auto-Submitted: auto-replied'] }));
    await fake.dovecot!.append(rawMail({ body: 'newsletter', headers: ['Precedence: bulk'] }));
    await fake.dovecot!.append(rawMail({ from: 'comms <TALON@talon.test>', body: 'my own echo' }));
    await fake.dovecot!.append(
      rawMail({
        from: 'Bob <BOB@Example.org>',
        body: 'a person',
        headers: ['Auto-Submitted: no', 'Reply-To: team@example.org'],
      }),
    );
    const { got } = await receiveUntil(ch, start.cursor, (g) => g.length >= 4);
    assert.deepEqual(
      got.map((m) => [m.text, m.fromBot]),
      [
        ['I am on vacation', true],
        ['newsletter', true],
        ['my own echo', true],
        ['a person', false],
      ],
    );
    assert.equal(got[3]!.from, 'bob@example.org');
    assert.equal(got[3]!.replyTo, 'team@example.org');
  });

  it('the cursor carries over to a new channel object (a restart): only newer mail, none repeated', async () => {
    await fake.dovecot!.append(rawMail({ body: 'old mail, before the channel' }));
    const ch1 = await channel();
    const start = await ch1.receive!(undefined, AbortSignal.timeout(15_000));
    assert.deepEqual(start.messages, [], 'existing mail is not a command');
    assert.match(start.cursor!, /^\d+:\d+$/);
    await fake.dovecot!.append(rawMail({ body: 'first' }));
    const a = await receiveUntil(ch1, start.cursor, (g) => g.length >= 1);
    assert.deepEqual(
      a.got.map((m) => m.text),
      ['first'],
    );
    await ch1.close!();
    await fake.dovecot!.append(rawMail({ body: 'second' }));
    await fake.dovecot!.append(rawMail({ body: 'third' }));
    const ch2 = await channel();
    const b = await receiveUntil(ch2, a.cursor, (g) => g.length >= 2);
    assert.deepEqual(
      b.got.map((m) => m.text),
      ['second', 'third'],
    );
    const ids = new Set([...a.got, ...b.got].map((m) => m.platformId));
    assert.equal(ids.size, 3);
    await receivesNothing(ch2, b.cursor);
  });

  it('a rebuilt mailbox (another UIDVALIDITY) starts at its end with a warning', async () => {
    const url = `${fake.url}&mailbox=Rebuilt`;
    await fake.dovecot!.appendTo('Rebuilt', rawMail({ body: 'before the rebuild' }));
    const ch1 = await channel(url);
    const start = await ch1.receive!(undefined, AbortSignal.timeout(15_000));
    await ch1.close!();
    await fake.dovecot!.withClient(async (c) => {
      await c.mailboxDelete('Rebuilt');
      await c.mailboxCreate('Rebuilt');
    });
    await fake.dovecot!.appendTo('Rebuilt', rawMail({ body: 'in the new mailbox, before the restart' }));
    const env = testEnv();
    const ch2 = await channel(url, fake.secrets, env);
    const r = await ch2.receive!(start.cursor, AbortSignal.timeout(15_000));
    assert.deepEqual(r.messages, []);
    assert.notEqual(r.cursor!.split(':')[0], start.cursor!.split(':')[0]);
    assert.ok(
      env.logs.some((l) => l.startsWith('warn') && /rebuilt/.test(l)),
      env.logs.join('\n'),
    );
    await fake.dovecot!.appendTo('Rebuilt', rawMail({ body: 'after the rebuild' }));
    const { got } = await receiveUntil(ch2, r.cursor, (g) => g.length >= 1);
    assert.deepEqual(
      got.map((m) => m.text),
      ['after the rebuild'],
    );
  });

  it('IDLE: a receive with no mail waits, and resolves once a mail is appended', async () => {
    const ch = await channel();
    const start = await ch.receive!(undefined, AbortSignal.timeout(15_000));
    let settled = false;
    const pending = ch.receive!(start.cursor, AbortSignal.timeout(30_000)).finally(() => {
      settled = true;
    });
    // give it the time to fetch, find nothing and settle into IDLE; with no mail it must still be waiting
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(settled, false, 'receive resolved with no new mail');
    await fake.dovecot!.append(rawMail({ body: 'wake up' }));
    const b = await pending;
    assert.deepEqual(
      b.messages.map((m) => m.text),
      ['wake up'],
    );
  });

  it('a dropped IMAP connection is made again: a waiting receive still gets the next mail', async () => {
    const ch = await channel();
    const start = await ch.receive!(undefined, AbortSignal.timeout(15_000));
    const pending = ch.receive!(start.cursor, AbortSignal.timeout(30_000));
    await new Promise((r) => setTimeout(r, 1000));
    await fake.dovecot!.kick();
    await fake.dovecot!.append(rawMail({ body: 'after the cut' }));
    const b = await pending;
    assert.deepEqual(
      b.messages.map((m) => m.text),
      ['after the cut'],
    );
    assert.match(await fake.dovecot!.log(), /Disconnected: Server shutting down/, 'the session was cut');
  });

  it('an abort ends a waiting receive', async () => {
    const ch = await channel();
    const start = await ch.receive!(undefined, AbortSignal.timeout(15_000));
    const ac = new AbortController();
    const p = ch.receive!(start.cursor, ac.signal);
    setTimeout(() => ac.abort(new Error('stop')), 300);
    await assert.rejects(p, /stop/);
  });
});

describe('email channel over TLS (smtp-server with its own self-signed certificate)', () => {
  let fake: SmtpFake;
  before(async () => {
    fake = await startSmtpFake({ secure: true });
  });
  after(async () => {
    await fake?.close();
  });

  it('mailtos with insecure=yes sends over implicit TLS', async () => {
    const ch = await makeChannel(email, fake);
    try {
      await ch.send(out('over TLS'), AbortSignal.timeout(15_000));
      assert.match(fake.mails().at(-1)!.text, /over TLS/);
    } finally {
      await ch.close?.();
    }
  });

  it('without insecure=yes the self-signed certificate is refused (transient, not sent)', async () => {
    const ch = await makeChannel(email, {
      url: fake.url.replace('insecure=yes', 'insecure=no'),
      secrets: fake.secrets,
    });
    const before = fake.mails().length;
    try {
      const e = await failure(ch.send(out('should not go'), AbortSignal.timeout(15_000)));
      assert.equal(e.kind, 'transient');
      assert.equal(fake.mails().length, before);
    } finally {
      await ch.close?.();
    }
  });
});

describe('email channel URL', () => {
  const make = async (url: string) => email.create(await parseChannelUrl(url, async () => 'pw'), testEnv(), 'mail');
  const refuses = async (url: string, re: RegExp) => {
    await assert.rejects(make(url), (err: unknown) => {
      assert.ok(err instanceof ChannelConfigError, String(err));
      assert.match(err.message, re);
      assert.match(err.message, /mailtos:\/\/USER/);
      return true;
    });
  };

  it('takes the form and its defaults', async () => {
    const ch = await make(
      'mailtos://me%40example.org:{secret:p}@smtp.example.org/a@example.org/b@example.org?imap=imap.example.org',
    );
    assert.deepEqual(ch.targets, ['a@example.org', 'b@example.org']);
    assert.equal(ch.dialect, 'html');
    assert.ok(ch.receive, 'imap= gives receive()');
    const outOnly = await make('mailto://me:{secret:p}@smtp.example.org:25/a@example.org?from=me@example.org&tls=no');
    assert.equal(outOnly.receive, undefined);
  });

  it('refuses what cannot work, naming the form', async () => {
    await refuses(
      'mailto://me:{secret:p}@smtp.example.org/not-an-address?from=me@example.org',
      /"not-an-address" is not an e-mail address/,
    );
    await refuses('mailto://me:{secret:p}@smtp.example.org/a@example.org', /from= is missing/);
    await refuses(
      'mailto://me:{secret:p}@smtp.example.org/a@example.org?from=me@@x',
      /from=me@@x is not an e-mail address/,
    );
    await refuses('mailto://me:{secret:p}@smtp.example.org/a@example.org?from=me@x.org&tls=maybe', /tls=maybe/);
    await refuses('mailto://me@smtp.example.org/a@example.org?from=me@x.org', /has no password/);
    await refuses(
      'mailto://me:{secret:p}@smtp.example.org/a@example.org?from=me@x.org&imap=imap.x.org&imapUser=other',
      /imapPassword/,
    );
    await refuses('mailto://me:{secret:p}@smtp.example.org/a@example.org?from=me@x.org&imap=bad host', /imap=bad host/);
    await refuses('ntfy://me:{secret:p}@smtp.example.org/a@example.org?from=me@x.org', /not mailto/);
  });
});

describe('email text', () => {
  it('replyText drops quotes, attributions (also wrapped), signatures and Outlook blocks', () => {
    assert.equal(replyText('ack K3F9\n\nOn Mon, 1 Dec 2026, Talon <t@x.org>\nwrote:\n> alert\n> more'), 'ack K3F9');
    assert.equal(replyText('Am 1.12.2026 schrieb Talon <t@x.org>:\n> alert\n\nack K3F9'), 'ack K3F9');
    assert.equal(replyText('ack\r\n\r\n-----Original Message-----\r\nFrom: Talon\r\nalert'), 'ack');
    assert.equal(replyText('line one\nline two\n-- \nsig'), 'line one\nline two');
  });
});
