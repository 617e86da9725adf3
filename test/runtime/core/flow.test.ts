/**
 * runtime/core/flow.ts: every step kind parses into its `kind` form; bad flows are refused before any browser starts,
 * each problem naming its step and what to write instead, all problems listed together.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TalonError } from '../../../runtime/core/errors.ts';
import {
  expandedCount,
  flowProblems,
  matchUrl,
  parseFlow,
  parseSelector,
  parseUrlPattern,
  renderTemplate,
  resolveInputs,
  FLOW_SCHEMA_DOC,
  STEP_KINDS,
  type Step,
} from '../../../runtime/core/flow.ts';

const flow = (steps: unknown[], extra: Record<string, unknown> = {}) => ({ name: 'test-flow', steps, ...extra });

/** the one problem of a flow with these steps */
function problemOf(steps: unknown[], extra: Record<string, unknown> = {}): string {
  const problems = flowProblems(flow(steps, extra));
  assert.equal(problems.length, 1, `expected one problem, got ${JSON.stringify(problems)}`);
  return problems[0]!;
}

test('every step kind parses, with its path and options', () => {
  const f = parseFlow(
    flow(
      [
        { goto: 'https://shop.example/orders/{{input.order}}', timeoutMs: 30_000 },
        { click: 'role=button[name="Sign in"]' },
        { fill: { selector: '#user', value: '{{input.user}}' } },
        { fill: { selector: { role: 'textbox', name: 'Password' }, value: { secret: 'SHOP_PW' } } },
        { select: { selector: '#country', value: 'de' } },
        { select: { selector: '#country', label: 'Germany' } },
        { check: '#terms' },
        { uncheck: 'text=Send me offers' },
        { press: { key: 'Enter' } },
        { press: { selector: '#q', key: 'Control+A' } },
        { wait_for: { selector: '.dashboard' } },
        { wait_for: { text: 'Welcome' } },
        { wait_for: { url: '**/dashboard' } },
        { wait_for: { url: '/dash(board)?$/' } },
        { wait_for: { networkIdle: true } },
        { extract: { fields: { title: 'h1', link: 'a.more@href' } } },
        { extract: { list: 'table tr.row', fields: { name: 'td.name', id: '@data-id' } }, as: 'rows' },
        { extract: { schema: { type: 'object' }, prompt: 'the price' }, as: 'price', optional: true },
        { assert: { selector: '.item', count: 3 } },
        { assert: { url: 'https://shop.example/*', text: 'Done' } },
        { screenshot: { name: 'after-login', fullPage: true } },
        { download: { selector: 'a.invoice', maxBytes: 1000 } },
        {
          if: { exists: '.cookie-banner', then: [{ click: '.accept' }], else: [{ screenshot: { name: 'no-banner' } }] },
        },
        { repeat: { times: 3, steps: [{ click: '.more' }] } },
        { repeat: { while: { exists: 'a.next' }, max: 5, steps: [{ click: 'a.next' }] } },
      ],
      { inputs: { order: 'string', user: { type: 'string', default: 'ann' } } },
    ),
  );
  const kinds = new Set(f.steps.map((s) => s.kind));
  for (const k of STEP_KINDS) assert.ok(kinds.has(k), `kind ${k} parsed`);
  assert.equal(f.limits.maxSteps, 200);
  assert.equal(f.limits.timeoutMs, 120_000);
  assert.equal(f.limits.stepTimeoutMs, 15_000);
  assert.deepEqual(f.inputs.user, { type: 'string', default: 'ann' });
  const [goto, click, , secretFill] = f.steps as [Step, Step, Step, Step];
  assert.deepEqual(goto, {
    path: 'steps[0]',
    optional: false,
    timeoutMs: 30_000,
    kind: 'goto',
    url: goto.kind === 'goto' ? goto.url : '',
  });
  assert.ok(click.kind === 'click' && click.selector.engine === 'role' && click.selector.name === 'Sign in');
  assert.ok(secretFill.kind === 'fill' && 'secret' in secretFill.value && secretFill.value.secret === 'SHOP_PW');
  const list = f.steps[16]!;
  assert.ok(list.kind === 'extract' && 'fields' in list);
  assert.equal(list.as, 'rows');
  assert.deepEqual(list.fields.id, { attr: 'data-id' });
  const cond = f.steps[22]!;
  assert.ok(cond.kind === 'if');
  assert.equal(cond.then[0]!.path, 'steps[22].then[0]');
  assert.equal(cond.else[0]!.path, 'steps[22].else[0]');
  const rep = f.steps[24]!;
  assert.ok(rep.kind === 'repeat' && rep.max === 5 && rep.steps[0]!.path === 'steps[24].steps[0]');
  assert.ok(FLOW_SCHEMA_DOC.includes('wait_for') && FLOW_SCHEMA_DOC.includes('repeat'));
});

test('selectors: CSS, text, role with name, objects; their parsed forms', () => {
  assert.deepEqual(parseSelector('form #email'), { engine: 'css', css: 'form #email', source: 'form #email' });
  assert.deepEqual(parseSelector('css=a[href="x]y"]'), {
    engine: 'css',
    css: 'a[href="x]y"]',
    source: 'css=a[href="x]y"]',
  });
  assert.deepEqual(parseSelector('text=Sign in'), {
    engine: 'text',
    text: 'Sign in',
    exact: false,
    source: 'text=Sign in',
  });
  assert.equal((parseSelector('text="Sign in"') as { exact: boolean }).exact, true);
  assert.deepEqual(parseSelector("role=link[name='Next page']"), {
    engine: 'role',
    role: 'link',
    name: 'Next page',
    exact: false,
    source: "role=link[name='Next page']",
  });
  assert.deepEqual(parseSelector('role=heading'), {
    engine: 'role',
    role: 'heading',
    exact: false,
    source: 'role=heading',
  });
  assert.deepEqual(parseSelector({ role: 'button', name: 'Send' }), {
    engine: 'role',
    role: 'button',
    name: 'Send',
    exact: false,
    source: 'role=button[name="Send"]',
  });
});

test('bad flows: each problem names the step and says what to write', () => {
  const cases: [unknown[], RegExp, Record<string, unknown>?][] = [
    [
      [{ goto: 'https://a.example' }, { click: '#a' }, { clik: '#b' }],
      /^steps\[2\]: unknown step "clik"; the steps are goto, click, .*did you mean "click"/,
    ],
    [[{ waitfor: { selector: '.x' } }], /^steps\[0\]: unknown step "waitfor".*did you mean "wait_for"/],
    [[{ click: 'div[data-x="1"' }], /^steps\[0\] \(click\): the CSS selector .* has a "\[" that is not closed/],
    [[{ click: 'a[title="open]' }], /^steps\[0\] \(click\): .*quote that is not closed/],
    [[{ click: 'xpath=//button' }], /^steps\[0\] \(click\): XPath .* is not taken: it breaks .*write CSS/],
    [[{ click: '//div/button' }], /^steps\[0\] \(click\): XPath/],
    [
      [{ goto: 'file:///etc/passwd' }],
      /^steps\[0\] \(goto\): "file:\/\/\/etc\/passwd" is a file: URL; a flow goes to http: and https: pages only/,
    ],
    [[{ goto: 'example.com/login' }], /^steps\[0\] \(goto\): .*not an absolute URL; write it with its scheme/],
    [
      [{ fill: { selector: '#pw', value: { secret: 'my secret!' } } }],
      /^steps\[0\] \(fill\): the secret name "my secret!" is not a secret's name: 1-64 letters/,
    ],
    [
      [{ repeat: { times: 500, steps: [{ click: '.more' }] } }],
      /^steps\[0\] \(repeat\): times must be a whole number from 1 to 100; got number 500/,
    ],
    [
      [{ repeat: { while: { exists: 'a.next' }, max: 101, steps: [{ click: 'a.next' }] } }],
      /^steps\[0\] \(repeat\): max must be a whole number from 1 to 100/,
    ],
    [
      [
        {
          if: {
            exists: 'a',
            then: [
              {
                if: {
                  exists: 'b',
                  then: [{ if: { exists: 'c', then: [{ if: { exists: 'd', then: [{ click: 'e' }] } }] } }],
                },
              },
            ],
          },
        },
      ],
      /^steps\[0\]\.then\[0\]\.then\[0\]\.then\[0\]\.then: if\/repeat nest 5 deep; at most 4 levels/,
    ],
    [[{ fill: { selector: '#q' } }], /^steps\[0\] \(fill\): needs value: a string/],
    [[{ select: { selector: '#c' } }], /^steps\[0\] \(select\): needs one of value .* or label/],
    [
      [{ click: 'role=buton[name="Go"]' }],
      /^steps\[0\] \(click\): "buton" is not a WAI-ARIA role \(did you mean "button"\?\)/,
    ],
    [
      [{ click: 'role=button[name="Go"' }],
      /^steps\[0\] \(click\): .*is not a role selector \(it has a "\[" that is not closed\)/,
    ],
    [[{ click: '' }], /^steps\[0\] \(click\): the selector is empty; write CSS/],
    [
      [{ click: '#a', fill: { selector: '#b', value: 'x' } }],
      /^steps\[0\]: has click and fill: a step does one thing; split it into 2 steps/,
    ],
    [[{ click: '#a', timeout: 5000 }], /^steps\[0\] \(click\): unknown option "timeout".*did you mean "timeoutMs"/],
    [
      [{ wait_for: { selector: '.a', text: 'b' } }],
      /^steps\[0\] \(wait_for\): waits for one thing; it has selector and text/,
    ],
    [
      [{ goto: 'https://a.example/{{input.missing}}' }],
      /^steps\[0\] \(goto\): the URL uses \{\{input.missing\}\} but the flow declares no input "missing"/,
      { inputs: { id: 'string' } },
    ],
    [[{ screenshot: { name: 'a/b' } }], /^steps\[0\] \(screenshot\): name "a\/b" must be 1-64 letters/],
    [
      [{ download: { selector: 'a', maxBytes: 0 } }],
      /^steps\[0\] \(download\): maxBytes must be a whole number from 1 to/,
    ],
    [[{ assert: { count: 2 } }], /^steps\[0\] \(assert\): count counts the matches of a selector; add selector/],
    [
      [{ extract: { fields: { link: '@href' } } }],
      /^steps\[0\] \(extract\) fields\.link: "@href" reads the list item's attribute; it needs a list/,
    ],
    [[{ click: 'id=submit' }], /^steps\[0\] \(click\): "id=" is not a selector engine Talon takes/],
  ];
  for (const [steps, re, extra] of cases) {
    const p = problemOf(steps, extra);
    assert.match(p, re, `for ${JSON.stringify(steps)}`);
  }
});

test('parseFlow throws BAD_REQUEST naming the step; all problems are listed together', () => {
  const raw = {
    name: 'Bad Name',
    limits: { maxSteps: 5000 },
    steps: [{ goto: 'ftp://x.example' }, { clik: '#a' }, { repeat: { times: 2, steps: [{ click: 'xpath=//a' }] } }],
  };
  const problems = flowProblems(raw);
  assert.equal(problems.length, 5, JSON.stringify(problems));
  assert.match(problems[0]!, /^name: "Bad Name" must be 1-63 lowercase/);
  assert.match(problems[1]!, /^limits: maxSteps must be a whole number from 1 to 1000/);
  assert.match(problems[2]!, /^steps\[0\] \(goto\): .*ftp: URL/);
  assert.match(problems[3]!, /^steps\[1\]: unknown step "clik"/);
  assert.match(problems[4]!, /^steps\[2\]\.steps\[0\] \(click\): XPath/);
  assert.throws(
    () => parseFlow(raw),
    (e: unknown) =>
      e instanceof TalonError &&
      e.code === 'BAD_REQUEST' &&
      e.message.startsWith('flow "Bad Name" has 5 problems: name: ') &&
      e.message.includes('steps[2].steps[0] (click): XPath') &&
      (e.details as { problems: string[] }).problems.length === 5,
  );
  assert.throws(
    () => parseFlow(flow([{ clik: '#a' }])),
    /^TalonError: flow "test-flow": steps\[0\]: unknown step "clik"/,
  );
  assert.deepEqual(flowProblems(flow([{ click: '#ok' }])), []);
});

test('total steps after expansion are held to maxSteps', () => {
  const steps = [{ repeat: { times: 100, steps: [{ click: '.a' }, { click: '.b' }] } }];
  assert.match(problemOf(steps), /^steps: can run up to 201 steps \(repeats expanded\), over limits\.maxSteps 200/);
  const ok = parseFlow(flow(steps, { limits: { maxSteps: 300 } }));
  assert.equal(expandedCount(ok.steps), 201);
  assert.match(
    problemOf([{ click: 'a' }], { limits: { timeoutMs: 3_600_000 } }),
    /^limits: timeoutMs must be a whole number from 1 to 1800000/,
  );
});

test('top-level problems: not an object, no steps, goal, bad output', () => {
  assert.match(flowProblems('x')[0]!, /^flow: is an object/);
  assert.match(problemOf([]).toString(), /^steps: needs a non-empty list/);
  assert.match(
    flowProblems({ name: 'a', goal: 'buy', steps: [{ click: 'a' }] })[0]!,
    /model-directed exploration is not a scripted flow/,
  );
  assert.match(problemOf([{ click: 'a' }], { output: 'object' }), /^output: is a JSON Schema object/);
});

test('URL patterns, templates and inputs', () => {
  assert.ok(matchUrl(parseUrlPattern('**/dashboard'), 'http://127.0.0.1:80/app/dashboard'));
  assert.ok(!matchUrl(parseUrlPattern('http://a.example/*'), 'http://a.example/x/y'));
  assert.ok(matchUrl(parseUrlPattern('http://a.example/**'), 'http://a.example/x/y'));
  assert.ok(matchUrl(parseUrlPattern('/page=\\d+$/'), 'http://a.example/list?page=2'));
  assert.throws(() => parseUrlPattern('/a(/'), /does not compile/);
  assert.equal(
    renderTemplate('https://a.example/{{ input.id }}?q={{input.q}}', { id: 7, q: 'x' }),
    'https://a.example/7?q=x',
  );
  assert.throws(() => renderTemplate('{{input.nope}}', {}), /the input "nope" is not given/);
  const f = parseFlow(
    flow([{ goto: 'https://a.example/{{input.id}}' }], {
      inputs: { id: 'integer', v: { type: 'boolean', default: true } },
    }),
  );
  assert.deepEqual(resolveInputs(f, { id: 3 }), { id: 3, v: true });
  assert.throws(
    () => resolveInputs(f, { id: 'x', extra: 1 }),
    (e: unknown) => {
      assert.ok(e instanceof TalonError && e.code === 'BAD_REQUEST');
      assert.match(e.message, /input "id" must be an integer; got string "x"/);
      assert.match(e.message, /input "extra" is not one of the flow's inputs/);
      return true;
    },
  );
  assert.match(
    problemOf([{ fill: { selector: '#a', value: '{{secret.PW}}' } }]),
    /a secret goes in a fill value as \{ secret: NAME \}/,
  );
});
