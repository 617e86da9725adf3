import { defineHand } from '../../../hands/sdk/index.ts';

/** Does nothing after start: what an idle Hand costs. */
export default defineHand({
  manifest: {
    id: 'bench-idle',
    version: '1.0.0',
    description: 'idle benchmark Hand',
    capabilities: {},
    quotas: { heapMb: 16 },
  },
  start() {},
});
