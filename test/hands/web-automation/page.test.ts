/**
 * The Web Automation Hand's page (hands/web-automation/page/form.ts, used by index.tsx), its pure parts: the "Add watch" form turned
 * into the PUT body for every kind (a missing field named in the form's words before any request), and a visual
 * change said as the Hand says it. The page in a real browser is test/browser/web-automation.test.ts's business.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KINDS, formWatch, visualText } from '../../../hands/web-automation/page/form.ts';
import { visualWords } from '../../../hands/web-automation/visual.ts';

const URL_ = 'https://shop.example/p';
const form = (kind: keyof typeof KINDS, target: string, extra: Partial<Parameters<typeof formWatch>[0]> = {}) =>
  formWatch({ id: 'lamp', url: URL_, kind, target, schedule: '', ...extra });

test('the Add form: the PUT body of each kind; an empty selector is the whole page; fields named', () => {
  assert.deepEqual(form('text', ' #price '), { id: 'lamp', body: { url: URL_, what: { text: '#price' } } });
  assert.deepEqual(form('text', ''), { id: 'lamp', body: { url: URL_, what: { text: null } } });
  assert.deepEqual(form('price', '.cost', { schedule: ' 0 * * * * ' }), {
    id: 'lamp',
    body: { url: URL_, what: { price: '.cost' }, schedule: '0 * * * *' },
  });
  assert.deepEqual(form('json', '$.a[0]'), { id: 'lamp', body: { url: URL_, what: { json: '$.a[0]' } } });
  assert.deepEqual(form('attribute', 'a.dl@href'), {
    id: 'lamp',
    body: { url: URL_, what: { attribute: { selector: 'a.dl', name: 'href' } } },
  });
  assert.deepEqual(form('visual', ''), { id: 'lamp', body: { url: URL_, what: { visual: null } } });
  assert.deepEqual(form('visual', '#hero'), { id: 'lamp', body: { url: URL_, what: { visual: '#hero' } } });
  assert.match(String(form('text', '', { id: ' ' })), /^Id: write a watch id/);
  assert.match(String(form('text', '', { url: '' })), /^URL: write the page/);
  assert.match(String(form('json', '')), /^JSON path: write the path/);
  assert.match(String(form('attribute', 'a.dl')), /^Selector@attribute: write the selector and the attribute/);
  assert.deepEqual(Object.keys(KINDS), ['text', 'price', 'json', 'attribute', 'visual']);
});

test("a visual change in words: the page says what the Hand's notification says", () => {
  for (const v of [
    { percent: 12.5, changedCells: 96, cells: 768, sizeChanged: false, width: 800, height: 600 },
    { percent: 0.4, changedCells: 3, cells: 768, sizeChanged: false, width: 800, height: 600 },
    { percent: 100, changedCells: 768, cells: 768, sizeChanged: true, width: 800, height: 640 },
  ])
    assert.equal(
      visualText({ ...v, before: { width: 800, height: 600 } }),
      visualWords({ ...v, before: { width: 800, height: 600 } }),
    );
  assert.equal(
    visualText({ percent: 4.5, sizeChanged: false, width: 800, height: 600 }),
    '4.5 % of the region changed (size 800×600)',
  );
});
