/**
 * Talking to the Monitoring Hand (the web admin's chat with `hand:<name>`): it answers from
 * what it knows now (active alerts, watched sensors and their latest values); with an `llm`
 * grant it asks the router to answer the question with that state as context, and falls
 * back to the plain summary when the router cannot.
 */
import type { HandChatMessage, HandContext } from '../sdk/types.ts';
import type { Alert } from './alerts.ts';

export interface MonitoringState {
  alerts: Alert[];
  sensors: Array<{
    id: string;
    name?: string;
    unit?: string | undefined;
    last: number | null;
    lastTs: number | null;
    failures: number;
  }>;
}

export function summarize(state: MonitoringState, now = Date.now()): string {
  const lines: string[] = [];
  if (state.alerts.length === 0) lines.push('No active alerts.');
  else {
    lines.push(`${state.alerts.length} active alert${state.alerts.length === 1 ? '' : 's'}:`);
    for (const a of state.alerts.slice(0, 20)) {
      lines.push(
        `- [${a.severity}] ${a.sensor} ${a.rule}: ${a.message}${a.acknowledged ? ` (acknowledged by ${a.acknowledged.by})` : ''}${a.suggestedFix ? ` — fix: ${a.suggestedFix}` : ''}`,
      );
    }
  }
  if (state.sensors.length === 0) lines.push('No sensors are being watched.');
  else {
    lines.push(`Watching ${state.sensors.length} sensor${state.sensors.length === 1 ? '' : 's'}:`);
    for (const s of state.sensors.slice(0, 40)) {
      const value =
        s.last === null
          ? 'no reading yet'
          : `${Number(s.last.toPrecision(6))}${s.unit ? ` ${s.unit}` : ''}${s.lastTs ? ` (${Math.max(0, Math.round((now - s.lastTs) / 1000))} s ago)` : ''}`;
      lines.push(`- ${s.id}: ${value}${s.failures > 0 ? `, ${s.failures} failed reads in a row` : ''}`);
    }
  }
  return lines.join('\n');
}

export async function answer(
  messages: HandChatMessage[],
  ctx: HandContext & { signal: AbortSignal },
  state: MonitoringState,
): Promise<string> {
  const summary = summarize(state);
  const question = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  try {
    const result = await ctx.llm.chat({
      messages: [
        {
          role: 'system',
          content: `You are the monitoring assistant of an edge device. Answer briefly from this current state only.\n${summary}`,
        },
        ...messages.filter((m) => m.role !== 'system').slice(-10),
      ],
      maxTokens: 256,
    });
    const text = typeof result?.text === 'string' ? result.text.trim() : '';
    if (text) return text;
  } catch {
    // no llm grant, no provider, or the router failed: the state itself is the answer
  }
  return question ? `Here is what I see now:\n${summary}` : summary;
}
