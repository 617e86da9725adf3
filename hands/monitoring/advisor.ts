/**
 * Suggested fixes from the LLM router when the Hand has an `llm` grant and the device has a
 * provider: the alert and its recent readings go to `llm.chat` (through the kernel, under the
 * Hand's token budget; local first, per the chain). Without a grant or a provider the first
 * refusal switches it off for the rest of the run, and the built-in playbooks answer.
 */
import type { Alert, AlertInput } from './alerts.ts';
import type { Advisor, RecentReadings } from './playbooks.ts';

type Call = (method: string, ...args: unknown[]) => Promise<unknown>;

const OFF_CODES = new Set(['CAPABILITY_DENIED', 'LLM_UNAVAILABLE', 'NOT_FOUND', 'LLM_BUDGET']);

export class LlmAdvisor implements Advisor {
  #call: Call;
  #fallback: Advisor;
  /** why the LLM is not asked any more, once it refused */
  off: string | null = null;
  asked = 0;

  constructor(call: Call, fallback: Advisor) {
    this.#call = call;
    this.#fallback = fallback;
  }

  async suggestFix(alert: Alert | AlertInput, recent: RecentReadings): Promise<string> {
    const playbook = await this.#fallback.suggestFix(alert, recent);
    if (this.off !== null) return playbook;
    const values = recent.values
      .slice(-30)
      .map((v) => Math.round(v * 100) / 100)
      .join(', ');
    try {
      this.asked++;
      const r = (await this.#call(
        'llm.chat',
        {
          messages: [
            {
              role: 'system',
              content: 'You maintain an edge device. Answer with one short, concrete fix (at most three sentences).',
            },
            {
              role: 'user',
              content: `Alert: ${alert.message}\nSensor: ${alert.sensor}${recent.unit ? ` (${recent.unit})` : ''}\nRecent readings, oldest first: ${values}\nBuilt-in advice: ${playbook}`,
            },
          ],
          maxTokens: 160,
        },
        { purpose: 'monitoring' },
      )) as { text?: unknown; provider?: unknown };
      const text = typeof r?.text === 'string' ? r.text.trim() : '';
      return text ? `${text} [${typeof r.provider === 'string' ? r.provider : 'llm'}]` : playbook;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && OFF_CODES.has(code)) this.off = code;
      return playbook;
    }
  }
}
