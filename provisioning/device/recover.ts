/**
 * When the kernel cannot start at all with a config a bundle brought (a port taken, a broker
 * refused), the agent never runs to roll it back. KernelHost calls this after a failed start:
 * with an apply pending, the previous generation goes back in force (a new generation, as any
 * rollback), the marker turns into 'rolling-back' with the reason, and the host starts again;
 * the agent then finds the old config in force, settles and acks 'rolled-back'.
 */
import { Store } from '../../runtime/store/store.ts';
import { ConfigGenerations } from '../../runtime/config/generations.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { AgentStore } from './state.ts';

/** True when a pending apply was rolled back and a new start is worth trying. */
export async function rollBackFailedStart(dataDir: string, err: unknown): Promise<boolean> {
  let store: Store;
  try {
    store = await Store.open(dataDir);
  } catch {
    return false;
  }
  try {
    const agent = new AgentStore(store);
    const pending = await agent.pending();
    if (!pending) return false;
    const generations = new ConfigGenerations(store);
    const cur = await generations.current();
    if (!cur || cur.hash === pending.previousHash) return false;
    const previous = await generations.get(pending.previousGeneration);
    const e = TalonError.from(err);
    await generations.apply(previous.config, {
      actor: 'provisioning',
      source: `rollback to ${pending.previousGeneration}`,
    });
    await agent.putPending({
      ...pending,
      phase: 'rolling-back',
      reason: {
        code: 'PROVISION_UNHEALTHY',
        message: `the kernel did not start with version ${pending.version}'s config: ${e.message}`.slice(0, 500),
      },
    });
    return true;
  } finally {
    await store.close();
  }
}
