/** Markdown into each dialect (hands/communication/format.ts): markup, escaping, links, splitting. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Dialect } from '../../../hands/communication/channels/types.ts';
import { render, splitRendered, splitText } from '../../../hands/communication/format.ts';

const MD =
  '# Disk\n**full** on `/var` and *rising*: [graph](https://g.example/d?a=1&b=2)\n- clean logs\n```\nrm -rf /tmp/x\n```';
const DIALECTS: Dialect[] = ['plain', 'markdown', 'html', 'telegram-html', 'slack', 'discord'];

describe('render', () => {
  it('renders each dialect', () => {
    assert.equal(render(MD, 'markdown'), MD);
    assert.equal(
      render(MD, 'plain'),
      'Disk\nfull on /var and rising: graph (https://g.example/d?a=1&b=2)\n• clean logs\nrm -rf /tmp/x',
    );
    assert.equal(
      render(MD, 'telegram-html'),
      '<b>Disk</b>\n<b>full</b> on <code>/var</code> and <i>rising</i>: <a href="https://g.example/d?a=1&amp;b=2">graph</a>\n• clean logs\n<pre>rm -rf /tmp/x</pre>',
    );
    assert.equal(
      render(MD, 'html'),
      '<b>Disk</b><br>\n<b>full</b> on <code>/var</code> and <i>rising</i>: <a href="https://g.example/d?a=1&amp;b=2">graph</a><br>\n• clean logs<br>\n<pre>rm -rf /tmp/x</pre>',
    );
    assert.equal(
      render(MD, 'slack'),
      '*Disk*\n*full* on `/var` and _rising_: <https://g.example/d?a=1&amp;b=2|graph>\n• clean logs\n```\nrm -rf /tmp/x\n```',
    );
  });

  it('HTML: no <br> after a <pre> block', () => {
    assert.equal(render('a\n```\nx\n```\nb', 'html'), 'a<br>\n<pre>x</pre>\nb');
  });

  it('<script> in text, code, a heading or a link label never reaches an HTML dialect unescaped', () => {
    const evil =
      '<script>alert(1)</script> `<script>` # x\n# <script>h</script>\n[<script>l</script>](https://a.example)\n```\n<script>pre</script>\n```';
    for (const d of ['html', 'telegram-html', 'slack'] as const) {
      const out = render(evil, d);
      assert.ok(!/<script/i.test(out), `${d}: ${out}`);
      assert.match(out, /&lt;script&gt;/);
    }
  });

  it("a link's URL with quotes cannot leave its attribute; javascript: links stay text", () => {
    const out = render('[x](https://a.example/"onmouseover="alert(1)) [y](javascript:alert(1))', 'html');
    assert.equal(out, '<a href="https://a.example/&quot;onmouseover=&quot;alert(1)">x</a> y (javascript:alert(1))');
    assert.equal(render('[y](javascript:alert(1))', 'telegram-html'), 'y (javascript:alert(1))');
    // Slack: | and > in a URL would end the link
    assert.equal(render('[t](https://a.example/x|y>z)', 'slack'), '<https://a.example/x%7Cy%3Ez|t>');
  });

  it('& < > are escaped in Slack and Telegram text, not in plain or Markdown', () => {
    assert.equal(render('a & b <c>', 'slack'), 'a &amp; b &lt;c&gt;');
    assert.equal(render('a & b <c>', 'telegram-html'), 'a &amp; b &lt;c&gt;');
    assert.equal(render('a & b <c>', 'plain'), 'a & b <c>');
  });

  it('Discord: @everyone and @here are neutralised, the rest stays Markdown', () => {
    const out = render('**hi** @everyone and @here', 'discord');
    assert.equal(out, '**hi** @\u200beveryone and @\u200bhere');
  });

  it('snake_case, a lone * and backslash escapes are text', () => {
    assert.equal(render('my_var_name 2 * 3 \\*not\\*', 'telegram-html'), 'my_var_name 2 * 3 *not*');
    assert.equal(render('__bold__ and _it_', 'telegram-html'), '<b>bold</b> and <i>it</i>');
  });
});

describe('splitRendered', () => {
  const long = [
    '# Report',
    ...Array.from({ length: 120 }, (_, i) => `- item **${i}** with <tag> & [link ${i}](https://x.example/${i}?q=<>)`),
    '',
    '```',
    ...Array.from({ length: 80 }, (_, i) => `line ${i} <&>`),
    '```',
    'x'.repeat(900),
    '🙂'.repeat(400),
  ].join('\n');

  it('never exceeds max in any dialect, for several limits', () => {
    for (const d of DIALECTS)
      for (const max of [64, 200, 1000, 4096]) {
        const parts = splitRendered(long, d, max);
        assert.ok(parts.length > 1 || render(long, d).length <= max);
        for (const p of parts) assert.ok(p.length <= max, `${d}/${max}: a part of ${p.length}`);
        assert.ok(parts.every((p) => p !== ''));
      }
  });

  it('loses no word, and a split code block is closed and reopened', () => {
    const parts = splitRendered(long, 'telegram-html', 500);
    const joined = parts.join('\n');
    for (const w of ['item <b>0</b>', 'item <b>119</b>', 'line 0 &lt;&amp;&gt;', 'line 79 &lt;&amp;&gt;'])
      assert.ok(joined.includes(w), w);
    for (const p of parts) assert.equal((p.match(/<pre>/g) ?? []).length, (p.match(/<\/pre>/g) ?? []).length, p);
    assert.ok(parts.filter((p) => p.includes('<pre>')).length >= 2, 'the block spans parts');
  });

  it('returns the whole rendering when it fits, and never splits an emoji', () => {
    assert.deepEqual(splitRendered('**a**', 'slack', 10), ['*a*']);
    for (const p of splitRendered('🙂'.repeat(100), 'plain', 15))
      assert.ok(!/[\uD800-\uDBFF]$/.test(p) && !/^[\uDC00-\uDFFF]/.test(p));
  });
});

describe('splitText', () => {
  it('cuts at paragraphs, lines, spaces, and never inside a surrogate pair', () => {
    assert.deepEqual(splitText('aaaa\n\nbbbb', 6), ['aaaa', 'bbbb']);
    const parts = splitText('🙂'.repeat(10), 5);
    assert.equal(parts.join(''), '🙂'.repeat(10));
    for (const p of parts) assert.ok(p.length <= 5 && !/[\uD800-\uDBFF]$/.test(p), JSON.stringify(p));
    assert.throws(() => splitText('abc', 0), RangeError);
  });
});
