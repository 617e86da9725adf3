/**
 * How many tool calls wait for a person: the nav's badge on Approvals. Polled every 5 s while
 * someone is logged in, and at once after an answer from the Approvals page; null when the
 * device has no tools set up (or the count cannot be read), which hides the badge.
 */
import { ApiError, get } from './api.ts';
import { store } from './store.ts';

export const POLL_MS = 5000;

export const pendingApprovals = store<number | null>(null);

/** reads the count; false when the device has no tools (503 NOT_RUNNING): nothing to poll for */
export async function refreshPending(): Promise<boolean> {
  try {
    const r = await get<{ pending: number }>('/api/v1/approvals?state=pending&limit=1');
    pendingApprovals.set(typeof r.pending === 'number' ? r.pending : null);
    return true;
  } catch (err) {
    pendingApprovals.set(null);
    return !(err instanceof ApiError && err.code === 'NOT_RUNNING');
  }
}

/** starts polling (stopped for good when the device has no tools set up); the returned function stops it */
export function pollPending(): () => void {
  let t: ReturnType<typeof setInterval> | undefined;
  let stopped = false;
  void refreshPending().then((go) => {
    if (go && !stopped) t = setInterval(() => void refreshPending(), POLL_MS);
  });
  return () => {
    stopped = true;
    clearInterval(t);
  };
}
