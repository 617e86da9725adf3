/**
 * The e-mail channel kind: out through SMTP (nodemailer), in through IMAP (imapflow + mailparser), both loaded
 * only when a channel of this kind first sends or receives.
 *
 *   mailtos://USER:{secret:mail_password}@SMTP_HOST[:PORT]/TO[/TO…]?from=ADDR&imap=IMAP_HOST[:PORT]&mailbox=INBOX
 *
 * `mailto` talks plain SMTP on 587 (STARTTLS when the server offers it), `mailtos` implicit TLS on 465; `tls=yes|
 * starttls|no` says it outright. `insecure=yes` accepts a self-signed certificate (a LAN, tests). The path's segments
 * are the default recipients. IMAP (`imap=`, implicit TLS on 993 unless `imapTls=no`, then 143) logs in with the same
 * user and password unless `imapUser=` and `imapPassword={secret:…}` are given; without `imap=` the channel only sends.
 *
 * Out: one pooled SMTP connection per channel. Each mail's Message-ID is `<outbox id@talon.SELF>` (`.2`, `.3`… for
 * the parts of a long message), so a retry after a crash mid-send carries the same id and a receiver can drop the
 * duplicate. Text goes as text/plain and text/html (../format.ts renders the Markdown into both). SMTP replies become
 * ChannelError kinds by their code: 530/534/535 auth, 4xx transient (rate when it says "too many"), 5xx permanent.
 *
 * In: one IMAP connection, the mailbox kept open. The cursor is `UIDVALIDITY:LASTUID`; nothing is marked or deleted.
 * A first receive without a cursor starts at the mailbox's end (mail already there is not a command); a cursor from
 * a mailbox that was rebuilt (another UIDVALIDITY) starts at the end too, with a warning. With nothing new, receive
 * waits for the server's EXISTS (imapflow IDLEs on its own) or the signal. Quoted reply lines are dropped, so
 * answering a notification with `ack K3F9` yields just that.
 */
import type { ImapFlow } from 'imapflow';
import type { Transporter } from 'nodemailer';
import { render, splitRendered } from '../format.ts';
import type {
  Channel,
  ChannelEnv,
  ChannelKind,
  ChannelUrl,
  InboundBatch,
  InMessage,
  OutMessage,
  SendResult,
} from './types.ts';
import { ChannelConfigError, ChannelError } from './types.ts';
import { sleep } from './wait.ts';

const FORM =
  'mailtos://USER:{secret:mail_password}@SMTP_HOST[:PORT]/TO[/TO…]?from=ADDR[&imap=IMAP_HOST[:PORT]][&imapTls=yes|no]' +
  '[&mailbox=INBOX][&tls=yes|starttls|no][&insecure=yes][&imapUser=…&imapPassword={secret:…}]';

/** a sane address: local part of atext and dots, a domain of labels (one label is fine on a LAN) */
const ADDRESS =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** the longest text part; a longer message goes as several mails with "(part i/n)" subjects */
const MAX_CHARS = 100_000;
/** the most of one incoming mail that is read (a big attachment is not a command) */
const MAX_SOURCE = 2_000_000;

export function isAddress(s: string): boolean {
  return s.length <= 254 && ADDRESS.test(s) && !s.startsWith('.') && !s.includes('..');
}

interface EmailConfig {
  smtp: { host: string; port: number; tls: 'yes' | 'starttls' | 'auto' | 'no'; user?: string; password?: string };
  imap?: { host: string; port: number; tls: boolean; user: string; password: string; mailbox: string };
  from: string;
  targets: string[];
  insecure: boolean;
}

function yesNo(u: ChannelUrl, key: string, fallback: boolean): boolean {
  const v = u.query[key];
  if (v === undefined || v === '') return fallback;
  if (/^(yes|true|1|on)$/i.test(v)) return true;
  if (/^(no|false|0|off)$/i.test(v)) return false;
  throw new ChannelConfigError(`${key}=${v} is not yes or no (e-mail channel: ${FORM})`);
}

function hostPort(v: string, key: string): { host: string; port?: number } {
  const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/.exec(v);
  const port = m?.[2] !== undefined ? Number(m[2]) : undefined;
  if (!m || (port !== undefined && (port < 1 || port > 65535)))
    throw new ChannelConfigError(`${key}=${v} is not HOST or HOST:PORT (e-mail channel: ${FORM})`);
  return { host: m[1]!.toLowerCase(), ...(port !== undefined && { port }) };
}

export function emailConfig(u: ChannelUrl): EmailConfig {
  const bad = (what: string) => new ChannelConfigError(`e-mail channel: ${what}; the form is ${FORM}`);
  if (u.host === '') throw bad('the SMTP host is missing (mailtos://USER:{secret:…}@smtp.example.org/…)');
  const tlsQ = (u.query.tls ?? '').toLowerCase();
  if (tlsQ !== '' && !['yes', 'starttls', 'no'].includes(tlsQ))
    throw bad(`tls=${u.query.tls} is not yes, starttls or no`);
  const tls = (tlsQ || (u.scheme === 'mailtos' ? 'yes' : 'auto')) as EmailConfig['smtp']['tls'];
  const port = u.port ?? (tls === 'yes' ? 465 : 587);
  if (u.user !== undefined && u.user !== '' && (u.password === undefined || u.password === ''))
    throw bad(`the user "${u.user}" has no password: write USER:{secret:mail_password}@HOST`);
  let user: string | undefined;
  try {
    user = u.user ? decodeURIComponent(u.user) : undefined;
  } catch {
    throw bad(`the user "${u.user}" has a bad percent-escape`);
  }
  const insecure = yesNo(u, 'insecure', false);
  const from = (u.query.from ?? (user && isAddress(user) ? user : '')).trim();
  if (from === '') throw bad('from= is missing (the address mail is sent from, e.g. from=talon@example.org)');
  if (!isAddress(from)) throw bad(`from=${from} is not an e-mail address (name@example.org)`);
  const targets: string[] = [];
  for (const t of u.path.flatMap((p) => p.split(','))) {
    const a = t.trim();
    if (a === '') continue;
    if (!isAddress(a)) throw bad(`the recipient "${a}" is not an e-mail address (name@example.org)`);
    targets.push(a);
  }
  const cfg: EmailConfig = {
    smtp: { host: u.host, port, tls, ...(user && { user, password: u.password! }) },
    from,
    targets,
    insecure,
  };
  const imapQ = u.query.imap;
  if (imapQ !== undefined && imapQ !== '') {
    const hp = hostPort(imapQ, 'imap');
    const imapTls = yesNo(u, 'imapTls', hp.port !== 143);
    const imapUser = u.query.imapUser || user;
    const imapPassword = u.query.imapPassword || (u.query.imapUser ? undefined : u.password);
    if (!imapUser) throw bad('IMAP needs a user: USER:{secret:…}@ in the URL or imapUser=');
    if (!imapPassword) throw bad(`IMAP user "${imapUser}" needs a password: imapPassword={secret:name}`);
    const mailbox = u.query.mailbox || 'INBOX';
    cfg.imap = {
      host: hp.host,
      port: hp.port ?? (imapTls ? 993 : 143),
      tls: imapTls,
      user: imapUser,
      password: imapPassword,
      mailbox,
    };
  } else if (u.query.mailbox !== undefined || u.query.imapUser !== undefined) {
    throw bad('mailbox= and imapUser= need imap=IMAP_HOST[:PORT]');
  }
  return cfg;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function htmlDocument(body: string, title: string): string {
  return (
    `<!doctype html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>\n` +
    `<body style="font-family:sans-serif;line-height:1.4">\n${body}\n</body></html>\n`
  );
}

/** the first line of Markdown as a plain subject */
function subjectOf(msg: OutMessage): string {
  const first = (msg.title ?? msg.text.split('\n').find((l) => l.trim() !== '') ?? '').trim();
  const plain = first
    .replace(/^#+\s*/, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[*_`]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  const s = plain || 'Talon';
  return s.length > 120 ? `${s.slice(0, 119)}…` : s;
}

/** an id as the left part of a Message-ID (dot-atom text) */
function idPart(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]/g, '_')
      .replace(/^\.+|\.+$/g, '')
      .replace(/\.{2,}/g, '.') || 'x'
  );
}

function domainPart(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9.-]/g, '-')
      .replace(/^[.-]+|[.-]+$/g, '') || 'talon'
  );
}

// ---------------------------------------------------------------------------------------------------------------
// SMTP and IMAP errors as ChannelError kinds

const RATE_TEXT =
  /too many (messages|mails|e-?mails|connections|requests|sessions|attempts)|rate.?limit|throttl|slow down/i;

/** the wait an SMTP reply names ("try again in 30 seconds", "in 2 minutes"), in ms */
function waitOf(text: string): number | undefined {
  const m = /(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b/i.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  if (unit.startsWith('ms') || unit.startsWith('milli')) return Math.round(n);
  if (unit.startsWith('h')) return Math.round(n * 3_600_000);
  if (unit.startsWith('m')) return Math.round(n * 60_000);
  return Math.round(n * 1000);
}

export function smtpError(err: unknown, host: string): ChannelError {
  if (err instanceof ChannelError) return err;
  const e = (err ?? {}) as { code?: string; responseCode?: number; response?: string; message?: string };
  const code = e.responseCode;
  const text = (e.response ?? e.message ?? String(err)).replace(/\s+/g, ' ').slice(0, 300);
  const opts = { cause: err, status: code ?? e.code };
  if (code === 530 || code === 534 || code === 535 || code === 538 || (code === undefined && e.code === 'EAUTH'))
    return new ChannelError(
      'auth',
      `SMTP ${host} refused the login (${code ?? e.code}): ${text}; check the channel's mail password secret`,
      opts,
    );
  if (code !== undefined && code >= 400 && code < 500) {
    if (RATE_TEXT.test(text))
      return new ChannelError('rate', `SMTP ${host} asks to slow down (${code}): ${text}`, {
        ...opts,
        retryAfterMs: waitOf(text) ?? 60_000,
      });
    return new ChannelError('transient', `SMTP ${host} failed for now (${code}): ${text}`, opts);
  }
  if (code !== undefined && code >= 500)
    return new ChannelError('permanent', `SMTP ${host} refused the mail (${code}): ${text}`, opts);
  // no reply code: the connection failed (ECONNECTION, ETIMEDOUT, ESOCKET, EDNS, ETLS) or the answer was garbage
  return new ChannelError('transient', `SMTP ${host}: ${text}`, opts);
}

function imapError(err: unknown, host: string): ChannelError {
  if (err instanceof ChannelError) return err;
  const e = (err ?? {}) as {
    code?: string;
    authenticationFailed?: boolean;
    serverResponseCode?: string;
    responseText?: string;
    message?: string;
  };
  const text = (e.responseText ?? e.message ?? String(err)).replace(/\s+/g, ' ').slice(0, 300);
  if (e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED')
    return new ChannelError(
      'auth',
      `IMAP ${host} refused the login: ${text}; check the channel's IMAP user and password`,
      { cause: err, status: 'AUTHENTICATIONFAILED' },
    );
  if (e.serverResponseCode === 'NONEXISTENT')
    return new ChannelError(
      'permanent',
      `IMAP ${host}: the mailbox does not exist (${text}); fix mailbox= in the channel URL`,
      {
        cause: err,
        status: e.serverResponseCode,
      },
    );
  return new ChannelError('transient', `IMAP ${host}: ${text}`, { cause: err, status: e.code ?? e.serverResponseCode });
}

// ---------------------------------------------------------------------------------------------------------------
// incoming mail

const ATTRIBUTION =
  /^(On|Am|Le|El|Il|Op|Em)\s.+\b(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu)\b.*:\s*$/;

/** the new lines of a reply: quoted (`>`) lines, the "On … wrote:" line, a signature and Outlook's quoted block go */
export function replyText(body: string): string {
  const lines = body.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const t = line.trim();
    if (line === '-- ' || /^-{2,}\s*Original Message\s*-{2,}$/i.test(t) || /^_{20,}$/.test(t)) break;
    if (/^\s*>/.test(line)) continue;
    if (ATTRIBUTION.test(t)) continue;
    // "On Mon, 1 Dec 2026, Talon <bot@x>\nwrote:" as a mail client wraps it
    if (/^(On|Am|Le)\s/.test(t) && ATTRIBUTION.test(`${t} ${(lines[i + 1] ?? '').trim()}`)) {
      i++;
      continue;
    }
    out.push(line.replace(/\s+$/, ''));
  }
  return out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function headerText(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && 'value' in (v as object)) return String((v as { value: unknown }).value);
  return String(v);
}

/** `p`, or the signal's reason as soon as it aborts (then `onAbort` runs) */
function abortable<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}

class EmailChannel implements Channel {
  readonly kind = 'email';
  readonly maxChars = MAX_CHARS;
  readonly dialect = 'html' as const;
  readonly name: string;
  readonly targets: readonly string[];
  readonly receive?: (cursor: string | undefined, signal: AbortSignal) => Promise<InboundBatch>;
  #cfg: EmailConfig;
  #env: ChannelEnv;
  #transport: Transporter | undefined;
  #imap: ImapFlow | undefined;
  #imapFailures = 0;
  /** bumped on every EXISTS and connection close: a waiting receive looks again */
  #generation = 0;
  #wakers = new Set<() => void>();
  #closed = false;

  constructor(cfg: EmailConfig, env: ChannelEnv, name: string) {
    this.#cfg = cfg;
    this.#env = env;
    this.name = name;
    this.targets = cfg.targets;
    if (cfg.imap) this.receive = (cursor, signal) => this.#receive(cursor, signal);
  }

  // ---- out -------------------------------------------------------------------------------------------------

  async #smtp(): Promise<Transporter> {
    if (this.#transport) return this.#transport;
    const { default: nodemailer } = await import('nodemailer');
    const s = this.#cfg.smtp;
    this.#transport = nodemailer.createTransport({
      pool: true,
      maxConnections: 1,
      host: s.host,
      port: s.port,
      secure: s.tls === 'yes',
      requireTLS: s.tls === 'starttls',
      ignoreTLS: s.tls === 'no',
      ...(s.user !== undefined && { auth: { user: s.user, pass: s.password ?? '' } }),
      tls: { rejectUnauthorized: !this.#cfg.insecure },
      name: domainPart(this.#env.self),
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 60_000,
    });
    return this.#transport;
  }

  /** a connection that failed is not trusted for the next mail: the next send builds a fresh pool */
  #dropTransport(): void {
    const t = this.#transport;
    this.#transport = undefined;
    t?.close();
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    signal.throwIfAborted();
    const to =
      msg.to !== undefined
        ? msg.to
            .split(',')
            .map((a) => a.trim())
            .filter((a) => a !== '')
        : [...this.#cfg.targets];
    if (to.length === 0)
      throw new ChannelError(
        'permanent',
        `e-mail channel ${this.name}: no recipient (the URL names none and the message has no "to")`,
      );
    for (const a of to)
      if (!isAddress(a))
        throw new ChannelError(
          'permanent',
          `e-mail channel ${this.name}: "${a}" is not an e-mail address (name@example.org)`,
        );
    // Markdown parts (a fenced block cut in two is closed and reopened), each sent as plain text and as HTML
    const parts = splitRendered(msg.text, 'markdown', this.maxChars);
    const subject = subjectOf(msg);
    const domain = `talon.${domainPart(this.#env.self)}`;
    const id = idPart(msg.id);
    const platformIds: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const messageId = `<${parts.length === 1 || i === 0 ? id : `${id}.${i + 1}`}@${domain}>`;
      const subj = parts.length === 1 ? subject : `${subject} (part ${i + 1}/${parts.length})`;
      const part = parts[i]!;
      const transport = await this.#smtp();
      try {
        await abortable(
          transport.sendMail({
            from: { name: this.#env.self, address: this.#cfg.from },
            to,
            subject: subj,
            messageId,
            text: render(part, 'plain'),
            html: htmlDocument(render(part, 'html'), subj),
            priority:
              msg.priority === 'high' || msg.priority === 'critical'
                ? 'high'
                : msg.priority === 'low'
                  ? 'low'
                  : 'normal',
            headers: {
              // RFC 3834: a machine's mail, so vacation responders stay quiet
              'Auto-Submitted': 'auto-generated',
              'X-Talon-Outbox-Id': msg.id,
              ...(msg.tags.length > 0 && { 'X-Talon-Tags': msg.tags.join(', ') }),
            },
          }),
          signal,
          () => this.#dropTransport(),
        );
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const ce = smtpError(err, this.#cfg.smtp.host);
        // a refused recipient leaves the connection usable; anything else starts over on a new one
        if (ce.kind !== 'permanent') this.#dropTransport();
        throw ce;
      }
      platformIds.push(messageId);
    }
    return { platformIds };
  }

  async probe(signal: AbortSignal): Promise<void> {
    const transport = await this.#smtp();
    try {
      await abortable(transport.verify(), signal, () => this.#dropTransport());
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      this.#dropTransport();
      throw smtpError(err, this.#cfg.smtp.host);
    }
    if (this.#cfg.imap) await this.#client(signal);
  }

  // ---- in --------------------------------------------------------------------------------------------------

  #wake(): void {
    this.#generation++;
    for (const w of this.#wakers) w();
    this.#wakers.clear();
  }

  /** resolves when the generation moves past `gen`, after `ms`, or rejects on the signal */
  #waitChange(gen: number, ms: number, signal: AbortSignal): Promise<void> {
    if (this.#generation !== gen) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', onAbort);
        this.#wakers.delete(done);
        resolve();
      };
      const onAbort = () => {
        clearTimeout(t);
        this.#wakers.delete(done);
        reject(signal.reason);
      };
      const t = setTimeout(done, ms);
      this.#wakers.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  async #client(signal: AbortSignal): Promise<ImapFlow> {
    if (this.#closed) throw new ChannelError('transient', `e-mail channel ${this.name} is closed`);
    if (this.#imap?.usable) return this.#imap;
    this.#imap = undefined;
    const imap = this.#cfg.imap!;
    // a connection that keeps failing is tried again less and less often (0.5 s doubling up to 60 s)
    if (this.#imapFailures > 0) await sleep(Math.min(60_000, 500 * 2 ** (this.#imapFailures - 1)), signal);
    const { ImapFlow } = await import('imapflow');
    const client = new ImapFlow({
      host: imap.host,
      port: imap.port,
      secure: imap.tls,
      auth: { user: imap.user, pass: imap.password },
      tls: { rejectUnauthorized: !this.#cfg.insecure },
      logger: false,
      // IDLE soon after the last command, so new mail is told at once
      autoIdleDelay: 1000,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
    });
    client.on('error', (err: Error) => this.#env.log.warn(`e-mail ${this.name}: IMAP ${imap.host}: ${err.message}`));
    client.on('exists', () => this.#wake());
    client.on('close', () => {
      if (this.#imap === client) this.#imap = undefined;
      this.#wake();
    });
    try {
      await abortable(
        (async () => {
          await client.connect();
          await client.mailboxOpen(imap.mailbox);
        })(),
        signal,
        () => client.close(),
      );
    } catch (err) {
      client.close();
      if (signal.aborted) throw signal.reason;
      this.#imapFailures++;
      throw imapError(err, imap.host);
    }
    this.#imapFailures = 0;
    this.#imap = client;
    return client;
  }

  /** the highest UID in the open mailbox (UIDNEXT - 1 when it is empty) */
  async #end(client: ImapFlow): Promise<number> {
    const last = await client.fetchOne('*', { uid: true });
    if (last && typeof last.uid === 'number') return last.uid;
    const next = client.mailbox && typeof client.mailbox === 'object' ? Number(client.mailbox.uidNext ?? 1) : 1;
    return Math.max(0, next - 1);
  }

  async #receive(cursor: string | undefined, signal: AbortSignal): Promise<InboundBatch> {
    const host = this.#cfg.imap!.host;
    for (;;) {
      signal.throwIfAborted();
      const client = await this.#client(signal);
      const gen = this.#generation;
      try {
        const box = client.mailbox;
        if (!box || typeof box !== 'object') throw new ChannelError('transient', `IMAP ${host}: no mailbox open`);
        const validity = String(box.uidValidity);
        const m = cursor !== undefined ? /^(\d+):(\d+)$/.exec(cursor) : null;
        if (cursor !== undefined && !m)
          this.#env.log.warn(
            `e-mail ${this.name}: cursor "${cursor}" is not UIDVALIDITY:UID; starting at the mailbox's end`,
          );
        if (!m || m[1] !== validity) {
          if (m)
            this.#env.log.warn(
              `e-mail ${this.name}: mailbox ${this.#cfg.imap!.mailbox} was rebuilt (UIDVALIDITY ${m[1]} → ${validity}); starting at its end, mail in between is not read`,
            );
          const end = await abortable(this.#end(client), signal, () => client.close());
          return { messages: [], cursor: `${validity}:${end}` };
        }
        const lastUid = Number(m[2]);
        const found = await abortable(
          client.fetchAll(
            `${lastUid + 1}:*`,
            { uid: true, internalDate: true, source: { maxLength: MAX_SOURCE } },
            { uid: true },
          ),
          signal,
          () => client.close(),
        );
        // `N:*` names the last message even when every UID is below N
        const fresh = found.filter((f) => f.uid > lastUid).sort((a, b) => a.uid - b.uid);
        if (fresh.length > 0) {
          const messages: InMessage[] = [];
          for (const f of fresh) {
            const im = await this.#parse(validity, f.uid, f.source, f.internalDate);
            if (im) messages.push(im);
          }
          return { messages, cursor: `${validity}:${fresh.at(-1)!.uid}` };
        }
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (client.usable) throw imapError(err, host);
        // the connection went away mid-command: connect again (with backoff) and look again
        this.#imapFailures++;
        continue;
      }
      // nothing new: wait for EXISTS (imapflow is in IDLE), a dropped connection, or the signal; look again at
      // least every 5 minutes in case a server's notice went missing
      await this.#waitChange(gen, 300_000, signal);
    }
  }

  async #parse(
    validity: string,
    uid: number,
    source: Buffer | undefined,
    internalDate: Date | string | undefined,
  ): Promise<InMessage | undefined> {
    if (!source) return undefined;
    const { simpleParser } = await import('mailparser');
    let parsed: Awaited<ReturnType<typeof simpleParser>>;
    try {
      parsed = await simpleParser(source, { skipImageLinks: true, skipTextToHtml: true });
    } catch (err) {
      this.#env.log.warn(`e-mail ${this.name}: UID ${uid} is not a readable mail (${(err as Error).message}); skipped`);
      return undefined;
    }
    const sender = parsed.from?.value[0];
    const from = (sender?.address ?? '').toLowerCase();
    const replyTo = (parsed.replyTo?.value[0]?.address ?? from).toLowerCase();
    const h = parsed.headers;
    const auto = headerText(h.get('auto-submitted')).trim().toLowerCase();
    const precedence = headerText(h.get('precedence')).trim().toLowerCase();
    const fromBot =
      (auto !== '' && auto !== 'no') ||
      ['bulk', 'auto_reply', 'list', 'junk'].includes(precedence) ||
      h.has('x-autoreply') ||
      h.has('x-autorespond') ||
      from === '' ||
      /^(mailer-daemon|postmaster)@/.test(from) ||
      from === this.#cfg.from.toLowerCase();
    const body = replyText(parsed.text ?? '');
    const subject = (parsed.subject ?? '').replace(/^\s*((re|aw|fwd?|wg|sv|tr)\s*:\s*)+/i, '').trim();
    const at = parsed.date?.getTime() ?? (internalDate ? new Date(internalDate).getTime() : Number.NaN);
    const msg: InMessage = {
      platformId: `${validity}:${uid}`,
      from,
      fromBot,
      text: body !== '' ? body : subject,
      at: Number.isFinite(at) ? at : this.#env.now(),
      ...(replyTo !== '' && { replyTo }),
    };
    if (sender?.name) msg.fromName = sender.name;
    return msg;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#dropTransport();
    const c = this.#imap;
    this.#imap = undefined;
    this.#wake();
    if (c)
      await Promise.race([c.logout().catch(() => c.close()), new Promise((r) => setTimeout(r, 2000).unref())]).finally(
        () => c.close(),
      );
  }
}

export const email: ChannelKind = {
  kind: 'email',
  schemes: ['mailto', 'mailtos'],
  direction: 'both',
  form: FORM,
  raw: true,
  create(u: ChannelUrl, env: ChannelEnv, name: string): Channel {
    if (u.scheme !== 'mailto' && u.scheme !== 'mailtos')
      throw new ChannelConfigError(`e-mail channel: scheme ${u.scheme}:// is not mailto:// or mailtos:// (${FORM})`);
    return new EmailChannel(emailConfig(u), env, name);
  },
};
