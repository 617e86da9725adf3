/**
 * Tools a Hand's surface declares (hands/sdk/surface.ts `tools`): each one a request kind of the Hand, offered to
 * agents, MCP clients and other Hands under their `tools` grant, with the registry's steps (schema, grant, approval,
 * timeout, audit) like every tool. The input schema is the kind's request schema, the output its answer schema; the
 * call is the typed request to the Hand's running instance (HAND_NOT_RUNNING when it does not run).
 */
import type { AnySurface } from '../../hands/sdk/surface.ts';
import { TalonError } from '../core/errors.ts';
import type { ToolDefinition } from './types.ts';

export type SurfaceRequest = (
  id: string,
  kind: string,
  body: unknown,
  opts: { timeoutMs?: number; signal?: AbortSignal },
) => Promise<unknown>;

/** how long a surface tool waits for its Hand */
export const SURFACE_TOOL_TIMEOUT_MS = 30_000;

export function surfaceTools(surfaces: readonly AnySurface[], request: SurfaceRequest): ToolDefinition[] {
  return surfaces.flatMap((s) =>
    (s.tools ?? []).map((t): ToolDefinition => {
      const kind = s.protocol?.[t.kind];
      if (!kind)
        throw new TalonError('INTERNAL', `Hand "${s.id}": tool ${t.name} sends "${t.kind}", not in its protocol`);
      const readOnly = t.readOnly === true;
      return {
        name: t.name,
        description: t.description,
        inputSchema: kind.request as Record<string, unknown>,
        outputSchema: kind.answer as Record<string, unknown>,
        annotations: {
          title: t.name,
          readOnlyHint: readOnly,
          destructiveHint: t.destructive === true,
          idempotentHint: readOnly,
          openWorldHint: false,
        },
        capability: `tools: ${t.name} in the tools grant${t.destructive ? ", and a person's approval" : ''}; the ${s.title} Hand running`,
        timeoutMs: SURFACE_TOOL_TIMEOUT_MS,
        source: `hand:${s.id}`,
        run: (input, ctx) =>
          request(s.id, t.kind, input, { timeoutMs: SURFACE_TOOL_TIMEOUT_MS - 1000, signal: ctx.signal }),
      };
    }),
  );
}
