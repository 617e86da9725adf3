/**
 * An outside MQTT client for tests (mqtt.js, no automatic reconnect). Unlike mqtt.connectAsync,
 * `connectClient` also rejects when the connection closes before CONNACK (TLS refusals, a
 * plain client on a TLS port) and after a bounded timeout, and always cleans up the client.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export type RefusedError = Error & { code?: number };

export function connectClient(url: string, opts: IClientOptions = {}, timeoutMs = 5_000): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: timeoutMs, ...opts });
    let lastError: RefusedError | null = null;
    const fail = (err: RefusedError): void => {
      cleanup();
      client.end(true);
      reject(err);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(client);
    };
    const onError = (err: RefusedError): void => {
      lastError = err;
    };
    const onClose = (): void => fail(lastError ?? new Error(`connection to ${url} closed before CONNACK`));
    const timer = setTimeout(
      () => fail(lastError ?? new Error(`no CONNACK from ${url} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    function cleanup(): void {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('close', onClose);
      // keep an error listener: mqtt.js emits errors that would otherwise be thrown
      client.off('error', onError);
      client.on('error', () => undefined);
    }
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/** Connects and expects a refusal; resolves with the error (code = CONNACK return/reason code when there is one). */
export async function connectRefused(url: string, opts: IClientOptions = {}, timeoutMs = 5_000): Promise<RefusedError> {
  let client: MqttClient;
  try {
    client = await connectClient(url, opts, timeoutMs);
  } catch (err) {
    return err as RefusedError;
  }
  await client.endAsync(true);
  throw new Error(`connection to ${url} was accepted, expected a refusal`);
}
