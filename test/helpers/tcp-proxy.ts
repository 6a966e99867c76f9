import net from 'node:net';

/**
 * A TCP proxy between linegate and a PLC that a test can cut and restore: a
 * network outage (a pulled cable, a switch reboot) while both ends keep
 * running and keep their state, which a server restart cannot play.
 */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #cut = false;
  #connections = 0;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  /** `delayMs`: each chunk is held this long, each way, in order (a slow or distant PLC). */
  static async start(targetPort: number, targetHost = '127.0.0.1', delayMs = 0): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => {
      const p = proxy!;
      if (p.#cut) {
        client.destroy();
        return;
      }
      p.#connections++;
      const upstream = net.connect(targetPort, targetHost);
      for (const s of [client, upstream]) {
        p.#sockets.add(s);
        s.on('close', () => p.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      if (delayMs === 0) {
        client.pipe(upstream);
        upstream.pipe(client);
      } else {
        // Timers of equal delay fire in the order they were set: the bytes keep their order.
        client.on('data', (chunk: Buffer) => setTimeout(() => upstream.write(chunk), delayMs));
        upstream.on('data', (chunk: Buffer) => setTimeout(() => client.write(chunk), delayMs));
      }
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end);
      upstream.on('close', end);
    });
    proxy = new TcpProxy(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get endpoint(): string {
    return `opc.tcp://127.0.0.1:${this.port}/`;
  }

  /** Connections made through the proxy so far (a reconnect adds one). */
  get connections(): number {
    return this.#connections;
  }

  /** Drops every connection and refuses new ones until restore(). */
  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
