/**
 * The Web Automation Hand (hands/web-automation/index.ts) with watches added at run time and with visual watches,
 * the kernel's browser tools scripted in fakeCtx's `f.tools` as in ./hand.test.ts:
 *   - putWatch/removeWatch: created then replaced, a bad watch refused naming the field with nothing stored, a config
 *     watch's id refused (CONFLICT) for both, MAX_WATCHES across config and API, the API watches read back by a new
 *     Hand on the same store (a restart), the source in the views, a replaced watch with another URL taking a new
 *     baseline, a removed one's state and store keys gone;
 *   - their Scheduling Hand jobs put when added, put again when the schedule changes, removed when the watch is;
 *   - visual checks: browser.read asked with visual: true (+ selector and waitFor), the fingerprint stored as the
 *     value, a change confirmed on the second check published with its share and screenshot, notified, kept as the
 *     watch's last change, the screenshot in the run record; the element gone is broken.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeCtx, type FakeCtx } from '../scheduling/fake-ctx.ts';
import { WebHand, watchJobId } from '../../../hands/web-automation/index.ts';
import { MAX_WATCHES } from '../../../hands/web-automation/settings.ts';
import { decodeVisual, type Visual } from '../../../hands/web-automation/visual.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { HandContext } from '../../../hands/sdk/types.ts';

const SHOP = 'https://shop.example/product/42';

interface Made {
  f: FakeCtx;
  ctx: HandContext;
  hand: WebHand;
  /** what browser.read answers: a text, or a picture (undefined: the selector matches nothing) */
  page: { text?: string; visual?: Visual | undefined; found: boolean; n: number };
}

function make(settings: Record<string, unknown>, store?: HandContext['store']): Made {
  const f = fakeCtx({ name: 'web' });
  const page: Made['page'] = { text: 'Widget 10 EUR', found: true, n: 0 };
  f.tools['browser.read'] = (input) => {
    page.n++;
    return {
      url: input.url,
      finalUrl: input.url,
      status: 200,
      found: page.found,
      text: page.found ? (page.text ?? null) : null,
      ...(input.visual === true && page.found && { visual: page.visual, screenshot: `browser/read-${page.n}.png` }),
      refused: [],
    };
  };
  const ctx: HandContext = { ...f.ctx, settings: { scheduler: '', ...settings }, ...(store && { store }) };
  return { f, ctx, page, hand: new WebHand(ctx, { schedulerTimeoutMs: 300 }) };
}

async function withHand(m: Made, fn: () => Promise<void>): Promise<void> {
  await m.hand.start();
  try {
    await fn();
  } finally {
    await m.hand.stop();
    m.f.close();
  }
}

const code = (c: string, re: RegExp) => (e: unknown) =>
  e instanceof TalonError && e.code === c && re.test(e.message) ? true : assert.fail(`${(e as Error).message}`);

test('added watches: created, replaced, refused naming the field (nothing stored), config ids refused, removed', async () => {
  const m = make({ watches: [{ id: 'in-config', url: SHOP, what: { text: '#offer' } }] });
  await withHand(m, async () => {
    const added = await m.hand.putWatch('lamp', { url: SHOP, what: { text: '#price' }, schedule: '0 * * * *' });
    assert.equal(added.created, true);
    assert.equal(added.watch.source, 'api');
    assert.equal(added.watch.kind, 'text');
    assert.equal(added.watch.what, 'text #price');
    assert.deepEqual(
      m.hand.watchesView().watches.map((w) => [w.id, w.source]),
      [
        ['in-config', 'config'],
        ['lamp', 'api'],
      ],
    );
    const stored = await m.ctx.store.get<{ watch: Record<string, unknown> }>('def/lamp');
    assert.deepEqual(stored?.watch, { id: 'lamp', url: SHOP, what: { text: '#price' }, schedule: '0 * * * *' });
    // a check works on it like on a config watch; the state stays when it is replaced with the same page and selector
    m.page.text = '$12';
    await m.hand.check('lamp');
    const again = await m.hand.putWatch('lamp', { id: 'lamp', url: SHOP, what: { text: '#price' }, confirm: false });
    assert.equal(again.created, false);
    assert.equal(again.watch.value, '$12', 'same URL and selector: the baseline stays');
    assert.equal(again.watch.schedule, undefined);
    // another selector: a new baseline (the old value meant something else)
    const moved = await m.hand.putWatch('lamp', { url: SHOP, what: { price: '#price' } });
    assert.equal(moved.watch.value, undefined);
    assert.equal(await m.ctx.store.get('watch/lamp'), undefined);

    // bad watches: BAD_REQUEST naming the field, nothing stored
    for (const [body, re] of [
      [{ url: 'ftp://x', what: { text: null } }, /^watch\.url: must be an http\(s\) URL/],
      [{ url: SHOP, what: { visual: { tolerance: 999 } } }, /^watch\.what\.visual\.tolerance/],
      [
        { url: SHOP, what: { text: null }, schedule: 'often' },
        /^watch\.schedule: must be a cron|^watch\.schedule: "often"/,
      ],
      [{ url: SHOP, what: { text: null }, colour: 'red' }, /^watch\.colour: not a watch field/],
      [{ id: 'other', url: SHOP, what: { text: null } }, /^watch\.id: "other" differs from the path's "new"/],
      ['a string', /^watch: must be an object/],
    ] as const) {
      await assert.rejects(m.hand.putWatch('new', body), code('BAD_REQUEST', re));
      assert.equal(await m.ctx.store.get('def/new'), undefined);
      assert.equal(m.hand.watches.has('new'), false);
    }
    const err = await m.hand.putWatch('new', { url: SHOP, what: { json: 'items' } }).catch((e: TalonError) => e);
    assert.deepEqual((err as TalonError).details, { field: 'watch.what' });

    // the config's watch is the config's
    await assert.rejects(
      m.hand.putWatch('in-config', { url: SHOP, what: { text: null } }),
      code('CONFLICT', /watch "in-config" is in the config: change it there/),
    );
    await assert.rejects(m.hand.removeWatch('in-config'), code('CONFLICT', /is in the config: remove it there/));
    await assert.rejects(m.hand.removeWatch('nothing'), code('NOT_FOUND', /no watch "nothing"/));

    assert.deepEqual(await m.hand.removeWatch('lamp'), { removed: 'lamp' });
    assert.equal(m.hand.watches.has('lamp'), false);
    for (const k of ['def/lamp', 'watch/lamp', 'change/lamp']) assert.equal(await m.ctx.store.get(k), undefined, k);
    await assert.rejects(m.hand.check('lamp'), code('NOT_FOUND', /not configured/));
  });
});

test('added watches survive a restart (a new Hand on the same store); a stored one the config now holds is left out', async () => {
  const first = make({});
  const store = first.ctx.store;
  await withHand(first, async () => {
    await first.hand.putWatch('lamp', { url: SHOP, what: { text: '#price' } });
    await first.hand.putWatch('later-in-config', { url: SHOP, what: { text: '#a' } });
    await first.hand.check('lamp');
  });
  const second = make({ watches: [{ id: 'later-in-config', url: SHOP, what: { text: '#b' } }] }, store);
  await withHand(second, async () => {
    const views = second.hand.watchesView().watches;
    assert.deepEqual(
      views.map((w) => [w.id, w.source, w.what]),
      [
        ['later-in-config', 'config', 'text #b'],
        ['lamp', 'api', 'text #price'],
      ],
    );
    assert.equal(views[1]!.value, 'Widget 10 EUR', 'its state came back too');
    assert.ok(
      second.f.logs.some(([l, msg]) => l === 'warn' && /later-in-config is left out: the config has/.test(msg)),
    );
  });
});

test('MAX_WATCHES across config and API: the next one is refused (CONFLICT), a replace still works', async () => {
  const config = Array.from({ length: MAX_WATCHES - 1 }, (_, i) => ({ id: `w${i}`, url: SHOP, what: { text: null } }));
  const m = make({ watches: config });
  await withHand(m, async () => {
    await m.hand.putWatch('last', { url: SHOP, what: { text: null } });
    await assert.rejects(
      m.hand.putWatch('one-more', { url: SHOP, what: { text: null } }),
      code('CONFLICT', new RegExp(`at most ${MAX_WATCHES} watches \\(config and API together\\)`)),
    );
    assert.equal((await m.hand.putWatch('last', { url: SHOP, what: { text: '#x' } })).created, false);
    assert.equal(m.hand.stats().stats.watches, MAX_WATCHES);
  });
});

test('added watches get their Scheduling Hand job; a new schedule puts it again; removing the watch removes it', async () => {
  const m = make({ scheduler: 'scheduler' });
  const asked: Array<{ op: string; job?: { id: string; trigger: { cron: string } }; id?: string }> = [];
  const jobs = new Map<string, unknown>();
  await m.f.ctx.bus.subscribe('hands/scheduler/tasks', (msg) => {
    const req = msg.json as { id: string; replyTo: string; task: (typeof asked)[number] };
    asked.push(req.task);
    const t = req.task;
    if (t.op === 'put') jobs.set(t.job!.id, t.job);
    if (t.op === 'remove') jobs.delete(t.id!);
    const result =
      t.op === 'list'
        ? {
            jobs: [...jobs.keys()].map((id) => ({
              id,
              source: 'api',
              spec: { action: { ask: { hand: 'web', task: { op: 'check' } } } },
            })),
          }
        : t.op === 'put'
          ? { job: t.job, created: true }
          : { removed: t.id };
    m.f.deliver(req.replyTo, { id: req.id, ok: true, result });
  });
  await withHand(m, async () => {
    await m.hand.scheduled;
    const job = watchJobId('web', 'lamp');
    await m.hand.putWatch('lamp', { url: SHOP, what: { text: '#price' }, schedule: '*/30 * * * *' });
    await m.hand.scheduled;
    assert.deepEqual((jobs.get(job) as { trigger: unknown })?.trigger, { cron: '*/30 * * * *' });
    assert.equal(m.hand.watchesView().watches[0]!.scheduledBy, 'scheduler');
    await m.hand.putWatch('lamp', { url: SHOP, what: { text: '#price' }, schedule: '0 7 * * *' });
    await m.hand.scheduled;
    assert.deepEqual((jobs.get(job) as { trigger: unknown })?.trigger, { cron: '0 7 * * *' }, 'put again');
    await m.hand.removeWatch('lamp');
    await m.hand.scheduled;
    assert.equal(jobs.has(job), false, 'the job went with the watch');
    assert.deepEqual(
      asked.filter((t) => t.op !== 'list').map((t) => `${t.op} ${t.job?.id ?? t.id}`),
      [`put ${job}`, `put ${job}`, `remove ${job}`],
    );
  });
});

// ---- visual checks --------------------------------------------------------------------------------------------------

function picture(lum: (c: number, r: number) => number, width = 640, height = 480): Visual {
  const cols = 32;
  const rows = 24;
  const bytes = Buffer.alloc(cols * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) bytes[r * cols + c] = lum(c, r);
  return { width, height, cols, rows, cells: bytes.toString('base64') };
}

test('a visual watch: read with visual: true, the fingerprint kept, a change confirmed with its share and screenshot', async () => {
  const m = make({});
  m.page.visual = picture(() => 200);
  await withHand(m, async () => {
    // added through the API, as `talon web watch add --visual '#hero'` does
    await m.hand.putWatch('hero', { url: SHOP, what: { visual: '#hero' } });
    const base = await m.hand.check('hero');
    assert.deepEqual(m.f.toolCalls[0], {
      name: 'browser.read',
      input: { url: SHOP, timeoutMs: 30_000, visual: true, selector: '#hero', waitFor: '#hero' },
    });
    assert.deepEqual(base.run.events, []);
    assert.deepEqual(base.run.screenshots, [{ name: 'visual', file: 'browser/read-1.png' }]);
    const stored = await m.ctx.store.get<{ value: string }>('watch/hero');
    assert.deepEqual(decodeVisual(stored!.value), m.page.visual, 'the value is the fingerprint');
    const view = m.hand.watchesView().watches[0]!;
    assert.deepEqual([view.kind, view.what, view.value], ['visual', 'visual #hero', 'a picture 640×480']);

    // noise under the tolerance: nothing
    m.page.visual = picture((c) => (c % 2 ? 205 : 196));
    assert.deepEqual((await m.hand.check('hero')).run.events, []);
    // the left half went dark: pending, then changed
    m.page.visual = picture((c) => (c < 16 ? 30 : 200));
    assert.deepEqual((await m.hand.check('hero')).run.events, ['pending']);
    const changed = await m.hand.check('hero');
    assert.deepEqual(changed.run.events, ['changed']);
    const e = changed.events[0]!;
    assert.equal(e.screenshot, 'browser/read-4.png');
    assert.equal((e.visual as { percent: number }).percent, 50);
    assert.equal(e.before, 'a picture 640×480', 'a picture is said in words, not as its fingerprint');
    const published = m.f.published.filter((p) => p.topic === 'web/watch/hero/changed');
    assert.equal(published.length, 1);
    assert.equal((published[0]!.payload as { screenshot: string }).screenshot, 'browser/read-4.png');
    const note = m.f.published.find((p) => p.topic === 'notify/normal')!.payload as { text: string };
    assert.match(note.text, /50 % of the region changed \(size 640×480\)\nscreenshot: browser\/read-4\.png/);
    const audit = m.f.audits.find((a) => a.action === 'watch.changed')!;
    assert.equal(audit.detail?.visualPercent, 50);
    const detail = await m.hand.watchDetail('hero');
    assert.equal(detail.lastChange?.visual?.percent, 50);
    assert.equal(detail.lastChange?.screenshot, 'browser/read-4.png');
    assert.equal(detail.lastChange?.diff, undefined);
    assert.deepEqual(
      detail.history.map((h) => h.result),
      ['baseline', 'small', 'pending', 'changed'],
    );

    // the element gone: broken after three failed checks, not "no change"
    m.page.found = false;
    const fails = [await m.hand.check('hero'), await m.hand.check('hero'), await m.hand.check('hero')];
    assert.deepEqual(
      fails.map((r) => r.run.events),
      [[], [], ['broken']],
    );
    assert.match(fails[0]!.run.error ?? '', /selector "#hero" matched nothing/);
  });
});

test('a visual watch of the viewport; a tool answering no fingerprint is a failed check, named', async () => {
  const m = make({ watches: [{ id: 'page', url: SHOP, what: { visual: null }, brokenAfter: 1 }] });
  await withHand(m, async () => {
    m.page.visual = undefined;
    const r = await m.hand.check('page');
    assert.deepEqual(m.f.toolCalls[0]!.input, { url: SHOP, timeoutMs: 30_000, visual: true });
    assert.equal(r.run.ok, false);
    assert.match(r.run.error ?? '', /browser\.read answered no fingerprint of the region \(visual: must be/);
    assert.deepEqual(r.run.events, ['broken']);
  });
});

test('a text watch added through the API changes like a config one: its last change keeps the diff', async () => {
  const m = make({});
  await withHand(m, async () => {
    await m.hand.putWatch('offer', { url: SHOP, what: { text: '#offer' }, confirm: false });
    await m.hand.check('offer');
    m.page.text = 'Widget 12 EUR';
    await m.hand.check('offer');
    const d = await m.hand.watchDetail('offer');
    assert.equal(d.lastChange?.before, 'Widget 10 EUR');
    assert.equal(d.lastChange?.after, 'Widget 12 EUR');
    assert.match(d.lastChange?.diff ?? '', /-Widget 10 EUR\n\+Widget 12 EUR/);
  });
});
