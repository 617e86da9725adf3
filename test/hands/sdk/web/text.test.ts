/** normalizeText, contentHash, terms, bestExtract, htmlToText. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bestExtract, contentHash, htmlToText, normalizeText, terms } from '../../../../hands/sdk/web/text.ts';

test('normalizeText collapses whitespace, trims, NFC', () => {
  assert.equal(normalizeText('  a\n\n b\t c  '), 'a b c');
  assert.equal(normalizeText('Cafe\u0301'), 'Caf\u00e9');
});

test('contentHash is stable across whitespace and Unicode forms, different for other text', () => {
  const h = contentHash('Acme builds robots.\n\nIn Berlin.');
  assert.match(h, /^[0-9a-f]{32}$/);
  assert.equal(contentHash('  Acme builds   robots. In\tBerlin. '), h);
  assert.equal(contentHash('Caf\u00e9'), contentHash('Cafe\u0301'));
  assert.notEqual(contentHash('Acme builds robots. In Munich.'), h);
});

test('terms: lower case, diacritics folded, stop words and 1-letter words out, order and repeats kept', () => {
  assert.deepEqual(terms('The Robots of Zürich and the robots of Köln: a Café, x 42!'), [
    'robots',
    'zurich',
    'robots',
    'koln',
    'cafe',
    '42',
  ]);
  assert.deepEqual(terms(''), []);
});

test('bestExtract holds the query term and respects maxChars', () => {
  const filler = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(30);
  const text = `${filler}Acme opened a robotics plant in Zürich last week. ${filler}`;
  const e = bestExtract(text, ['zurich', 'robotics'], 200);
  assert.ok(e.length <= 200, `${e.length} chars`);
  assert.match(e, /Zürich/);
  assert.match(e, /robotics/);
  // one very long sentence: cut around the match
  const long = `${'word '.repeat(500)}the needle is here ${'word '.repeat(500)}`;
  const l = bestExtract(long, ['needle'], 120);
  assert.ok(l.length <= 120);
  assert.match(l, /needle/);
  // no match: the beginning
  assert.ok(bestExtract(text, ['absent'], 100).startsWith('Lorem ipsum'));
  // short text as it is
  assert.equal(bestExtract('  short   text ', ['x']), 'short text');
});

test('htmlToText: tags out, scripts out, entities decoded, blocks on lines', () => {
  assert.equal(
    htmlToText(
      '<p>Hello &amp; welcome&nbsp;&mdash; &#169; &#x41;&lt;</p><script>evil()</script><ul><li>a</li><li>b</li></ul>',
    ),
    'Hello & welcome — © A<\na\nb',
  );
  assert.equal(htmlToText('plain text'), 'plain text');
  assert.equal(htmlToText('&unknown; &#0;'), '&unknown; \uFFFD');
});
