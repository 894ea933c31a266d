/**
 * Ports of the local stack's processes. An emulator gets its port number before the JVM binds it,
 * so another process can take it in between: the emulator must then start again on another port,
 * not hang or report the other process's server as itself. The Pub/Sub emulator is the hard case:
 * it does not exit when its bind fails.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PubSub } from '@google-cloud/pubsub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startJavaEmulator } from '../../local-stack/java-emulator';
import { freePort } from '../../local-stack/net-utils';
import { PUBSUB_STARTED, pubSubEmulatorArgs } from '../../local-stack/pubsub-emulator';

let taken: http.Server;
let takenPort: number;

beforeAll(async () => {
  // Whoever took the port answers GET / as the emulators do, so that answer alone proves nothing.
  taken = http.createServer((_req, res) => res.end('Ok\n'));
  takenPort = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as AddressInfo).port)));
});

afterAll(async () => {
  await new Promise((r) => taken.close(r));
});

describe('startJavaEmulator', () => {
  it('starts the Pub/Sub emulator again on another port when its first port was taken', async () => {
    const ports: number[] = [];
    const emulator = await startJavaEmulator({
      what: 'Pub/Sub emulator',
      args: pubSubEmulatorArgs(),
      started: PUBSUB_STARTED,
      // The first pick is the taken port, as if it had been taken after it was picked.
      pickPort: async () => {
        ports.push(ports.length === 0 ? takenPort : await freePort());
        return ports[ports.length - 1];
      },
      timeoutMs: 60_000,
    });
    try {
      expect(ports).toHaveLength(2);
      expect(ports[0]).toBe(takenPort);
      expect(emulator.host).toBe(`127.0.0.1:${ports[1]}`);
      // It is the emulator that answers there: the official client makes a topic on it.
      const pubsub = new PubSub({ projectId: 'demo-ports', apiEndpoint: emulator.host, emulatorMode: true });
      const [topic] = await pubsub.createTopic('events');
      expect(topic.name).toBe('projects/demo-ports/topics/events');
      await pubsub.close();
    } finally {
      await emulator.stop();
    }
  });

  it('gives up after three taken ports, naming the bind failure', async () => {
    let attempts = 0;
    const started = startJavaEmulator({
      what: 'Pub/Sub emulator',
      args: pubSubEmulatorArgs(),
      started: PUBSUB_STARTED,
      pickPort: () => {
        attempts++;
        return Promise.resolve(takenPort);
      },
      timeoutMs: 60_000,
    });
    await expect(started).rejects.toThrow(new RegExp(`could not bind 127\\.0\\.0\\.1:${takenPort}:[\\s\\S]*BindException`));
    expect(attempts).toBe(3);
  });
});
