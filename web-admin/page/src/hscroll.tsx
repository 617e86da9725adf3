/**
 * A box that scrolls sideways when its content is wider than the screen (a table, the nav on a
 * phone), with a visible hint on the side that has more: a fade and an arrow. The wrapper
 * carries data-more-right / data-more-left ("true"/"false") for tests.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/** follows whether ref's element (or the child `pick` chooses) has more to scroll to either side */
export function useOverflow<T extends HTMLElement>(
  pick?: (el: T) => HTMLElement | null,
): [{ current: T | null }, { left: boolean; right: boolean }] {
  const ref = useRef<T>(null);
  const [more, setMore] = useState({ left: false, right: false });
  useEffect(() => {
    const el = ref.current && pick ? pick(ref.current) : ref.current;
    if (!el) return;
    const update = (): void => {
      const left = el.scrollLeft > 2;
      const right = el.scrollWidth - el.clientWidth - el.scrollLeft > 2;
      setMore((m) => (m.left === left && m.right === right ? m : { left, right }));
    };
    update();
    el.addEventListener('scroll', update, { passive: true });
    const ro = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(update);
    ro?.observe(el);
    for (const c of Array.from(el.children)) ro?.observe(c);
    const mo = typeof MutationObserver === 'undefined' ? null : new MutationObserver(update);
    mo?.observe(el, { childList: true, subtree: true, characterData: true });
    return () => {
      el.removeEventListener('scroll', update);
      ro?.disconnect();
      mo?.disconnect();
    };
  }, []);
  return [ref, more];
}

export function HScroll({ testid, children }: { testid?: string; children: ComponentChildren }) {
  const [ref, more] = useOverflow<HTMLDivElement>();
  return (
    <div class="hscroll" data-testid={testid} data-more-right={String(more.right)} data-more-left={String(more.left)}>
      <div class="scroll" ref={ref}>
        {children}
      </div>
      {more.left && (
        <span class="hscroll-hint left" aria-hidden="true">
          ‹
        </span>
      )}
      {more.right && (
        <span
          class="hscroll-hint right"
          data-testid={testid ? `${testid}-hint` : undefined}
          aria-hidden="true"
          title="scroll sideways for more"
        >
          ›
        </span>
      )}
    </div>
  );
}

/** the nav's wrapper: on a phone the nav scrolls sideways, and this shows that it does */
export function NavBox({ children }: { children: ComponentChildren }) {
  const [ref, more] = useOverflow<HTMLDivElement>((el) => el.querySelector<HTMLElement>('.nav'));
  return (
    <div
      class="nav-wrap"
      ref={ref}
      data-testid="nav-box"
      data-more-right={String(more.right)}
      data-more-left={String(more.left)}
    >
      {children}
      {more.left && (
        <span class="hscroll-hint left" aria-hidden="true">
          ‹
        </span>
      )}
      {more.right && (
        <span class="hscroll-hint right" data-testid="nav-box-hint" aria-hidden="true" title="scroll sideways for more">
          ›
        </span>
      )}
    </div>
  );
}
