/**
 * Every built-in tool, in one list: the kernel's services (./kernel.ts), the shell (./shell.ts), the
 * caller's folder (./files.ts), data (./data.ts), the web (./web.ts) and the browser (./browser.ts). The
 * composition root (runtime/host/tools.ts) registers them; test/runtime/tools/builtin-contract.test.ts checks them all.
 */
import type { Clock } from '../../core/clock.ts';
import type { ToolDefinition } from '../types.ts';
import { type BrowserToolDeps, browserTools } from './browser.ts';
import { dataTools } from './data.ts';
import { fileTools } from './files.ts';
import { type KernelToolDeps, kernelTools } from './kernel.ts';
import { shellTools } from './shell.ts';
import { type WebToolDeps, webTools } from './web.ts';

export interface BuiltinToolDeps {
  kernel: KernelToolDeps;
  web: WebToolDeps;
  /** the kernel's browser (runtime/host/tools.ts); without it the tools make their own, lazily */
  browser?: BrowserToolDeps;
  clock?: Clock;
}

export function builtinTools(d: BuiltinToolDeps): ToolDefinition[] {
  return [
    ...kernelTools(d.kernel),
    ...shellTools(d.clock ? { clock: d.clock } : {}),
    ...fileTools(),
    ...dataTools(),
    ...webTools(d.web),
    ...browserTools(d.browser),
  ].map((t) => ({ ...t, source: t.source ?? 'builtin' }));
}
