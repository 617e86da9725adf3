/**
 * Microsoft Teams through an incoming webhook: `msteams://{secret:webhook}` where the secret is the webhook URL Teams
 * showed (with or without `https://`), or `msteams://HOST/PATH…` written out. Out only.
 *
 * A Workflows webhook (Power Automate, `*.logic.azure.com`, `*.powerplatform.com`) takes an Adaptive Card in a
 * `message` envelope; the legacy Office 365 connector (`*.webhook.office.com`) a MessageCard. `?card=adaptive|message`
 * overrides the guess. Title and Markdown text, in parts of at most 20 000 characters. The connector answers `1`, a
 * workflow 202 with no body; a 2xx with another body is the connector's own failure report ("…returned HTTP error
 * 429…" is a rate error). Teams gives no message id: a part's id is `<outbox id>#<part>`. `?api=BASEURL` replaces
 * https://HOST (tests point it at a local fake).
 */
import { splitRendered } from '../format.ts';
import { retryAfterHeader, statusError } from './http.ts';
import type { Channel, ChannelEnv, ChannelKind, ChannelUrl, OutMessage, SendResult } from './types.ts';
import { ChannelConfigError, ChannelError } from './types.ts';

const FORM = 'msteams://{secret:webhook_url}  or  msteams://HOST/PATH…[?card=adaptive|message&api=BASEURL]';

export const msteams: ChannelKind = {
  kind: 'msteams',
  schemes: ['msteams'],
  direction: 'out',
  form: FORM,
  raw: false,
  create(u, env, name) {
    return new TeamsChannel(u, env, name);
  },
};

/** a path segment as a URL writes it (keeping the `@` webhook paths carry) */
const seg = (s: string): string => encodeURIComponent(s).replace(/%40/g, '@');

class TeamsChannel implements Channel {
  readonly name: string;
  readonly kind = 'msteams';
  readonly maxChars = 20_000;
  readonly dialect = 'markdown' as const;
  readonly targets: readonly string[] = [];
  #env: ChannelEnv;
  #url: string;
  #adaptive: boolean;

  constructor(u: ChannelUrl, env: ChannelEnv, name: string) {
    // the host may be a secret holding the whole webhook URL (slashes and all)
    const whole = u.host.replace(/^https?:\/\//i, '');
    const slash = whole.indexOf('/');
    const host = slash >= 0 ? whole.slice(0, slash) : whole;
    const path = [...(slash >= 0 ? whole.slice(slash + 1).split('/') : []), ...u.path.map(seg)].filter((s) => s !== '');
    if (host === '' || path.length === 0)
      throw new ChannelConfigError(
        `channel "${name}": a Teams URL needs the incoming webhook's host and path: ${FORM}`,
      );
    this.name = name;
    this.#env = env;
    const base = (u.query.api ?? `https://${host}${u.port ? `:${u.port}` : ''}`).replace(/\/+$/, '');
    this.#url = `${base}/${path.join('/')}`;
    const card = u.query.card;
    if (card !== undefined && card !== 'adaptive' && card !== 'message')
      throw new ChannelConfigError(`channel "${name}": ?card= is adaptive or message, not "${card}"`);
    this.#adaptive =
      card !== undefined ? card === 'adaptive' : !/\.webhook\.office\.com$|^outlook\.office\.com$/i.test(host);
  }

  #payload(title: string | undefined, text: string): unknown {
    if (!this.#adaptive)
      return {
        '@type': 'MessageCard',
        '@context': 'https://schema.org/extensions',
        summary: title ?? text.slice(0, 80),
        ...(title && { title }),
        text,
      };
    const body: unknown[] = [];
    if (title) body.push({ type: 'TextBlock', text: title, weight: 'Bolder', size: 'Medium', wrap: true });
    body.push({ type: 'TextBlock', text, wrap: true });
    return {
      type: 'message',
      attachments: [
        {
          contentType: 'application/vnd.microsoft.card.adaptive',
          contentUrl: null,
          content: {
            $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
            type: 'AdaptiveCard',
            version: '1.4',
            body,
          },
        },
      ],
    };
  }

  async send(msg: OutMessage, signal: AbortSignal): Promise<SendResult> {
    const platformIds: string[] = [];
    const parts = splitRendered(msg.text, this.dialect, this.maxChars);
    for (const [i, text] of parts.entries()) {
      await this.#post(this.#payload(i === 0 ? msg.title : undefined, text), signal);
      platformIds.push(`${msg.id}#${i}`);
    }
    return { platformIds };
  }

  async #post(payload: unknown, signal: AbortSignal): Promise<void> {
    let res: Response;
    try {
      res = await this.#env.fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': `talon/${this.#env.self}` },
        body: JSON.stringify(payload),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      const e = err as { code?: string; message?: string };
      throw new ChannelError(
        e.code === 'CAPABILITY_DENIED' ? 'auth' : 'transient',
        `Teams: ${e.message ?? String(err)}`,
        {
          status: e.code,
          cause: err,
        },
      );
    }
    const text = (await res.text().catch(() => '')).trim();
    if (!res.ok) throw statusError('Teams', res.status, text, retryAfterHeader(res.headers, this.#env.now()));
    if (text === '' || text === '1' || res.status === 202) return;
    // the legacy connector reports a failure downstream with a 200 and a sentence
    const m = /HTTP error (\d{3})/.exec(text);
    if (m) throw statusError('Teams', Number(m[1]), text, retryAfterHeader(res.headers, this.#env.now()));
    throw new ChannelError(
      'transient',
      `Teams answered ${res.status} with ${JSON.stringify(text.slice(0, 80))}, not "1"`,
      { status: res.status },
    );
  }
}
