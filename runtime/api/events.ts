import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../contract.js';
import type { ModelsStatus } from '../deploy/types.js';
import type { InspectionResult } from '../result.js';
import type { Station } from '../station.js';
import { hasModelControl } from './context.js';

export interface EventHubOptions {
  /** Bytes a client may fall behind before it is dropped. */
  readonly maxBufferedBytes?: number;
  /** Clients at once; past that a new one is refused (503). */
  readonly maxClients?: number;
  readonly heartbeatMs?: number;
}

/** The station's 'model' event, as the hub listens to it. */
interface ModelEvents {
  on(event: 'model', listener: (m: ModelsStatus) => void): unknown;
  off(event: 'model', listener: (m: ModelsStatus) => void): unknown;
}

interface Client {
  readonly res: ServerResponse;
  readonly id: number;
}

/**
 * Server-sent events of the station's results. Each result is serialised once and written to every
 * client; a client whose socket buffer passes the bound (it reads slower than the station decides)
 * is dropped, so the station never waits for a reader and memory stays bounded. A comment line
 * every `heartbeatMs` keeps proxies from closing an idle stream and tells the client it is alive.
 */
export class EventHub {
  readonly #station: Station;
  readonly #log: Logger;
  readonly #maxBuffered: number;
  readonly #maxClients: number;
  readonly #clients = new Set<Client>();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #onResult = (r: InspectionResult): void => this.#broadcast('result', r);
  readonly #onDrop = (r: InspectionResult): void => this.#broadcast('result', r);
  /** A deploy, rollback or shadow change: the dashboard shows the new version without polling. No id: the stream's ids are result ids. */
  readonly #onModel = (m: ModelsStatus): void => {
    if (this.#clients.size > 0) this.#send(`event: model\ndata: ${JSON.stringify(m)}\n\n`);
  };
  readonly #models: ModelEvents | undefined;
  #nextId = 0;
  #dropped = 0;
  #closed = false;

  constructor(station: Station, log: Logger, o: EventHubOptions = {}) {
    this.#station = station;
    this.#log = log;
    this.#maxBuffered = o.maxBufferedBytes ?? 1024 * 1024;
    this.#maxClients = o.maxClients ?? 32;
    // An event, not a comment: a browser's EventSource never reports comments, and a page must tell a quiet line from a dead link.
    this.#heartbeat = setInterval(() => this.#send(`event: heartbeat\ndata: {"at":"${new Date().toISOString()}"}\n\n`), o.heartbeatMs ?? 15_000);
    this.#heartbeat.unref();
    station.on('result', this.#onResult);
    station.on('drop', this.#onDrop);
    // Only a station that deploys models emits 'model'.
    this.#models = hasModelControl(station) ? station : undefined;
    this.#models?.on('model', this.#onModel);
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Slow clients dropped so far. */
  get dropped(): number {
    return this.#dropped;
  }

  get full(): boolean {
    return this.#closed || this.#clients.size >= this.#maxClients;
  }

  /** Takes the response over: headers, a first comment, then results until the client or the server goes. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    const client: Client = { res, id: this.#nextId++ };
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`: linegate ${this.#station.plan.settings.id} results\nretry: 2000\n\n`);
    this.#clients.add(client);
    const gone = (): void => void this.#clients.delete(client);
    req.on('close', gone);
    res.on('close', gone);
    res.on('error', gone);
  }

  /** Ends every stream and stops listening; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#station.off('result', this.#onResult);
    this.#station.off('drop', this.#onDrop);
    this.#models?.off('model', this.#onModel);
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
  }

  #broadcast(event: string, r: InspectionResult): void {
    if (this.#clients.size === 0) return;
    this.#send(`id: ${r.resultId}\nevent: ${event}\ndata: ${JSON.stringify(r)}\n\n`);
  }

  #send(chunk: string): void {
    const bytes = Buffer.byteLength(chunk);
    for (const c of this.#clients) {
      // writableLength: what the socket has not taken yet. Past the bound this reader is too slow; a
      // client that has taken everything still gets an event larger than the bound (else none would).
      const behind = c.res.writableLength;
      if (behind > 0 && behind + bytes > this.#maxBuffered) {
        this.#clients.delete(c);
        this.#dropped++;
        this.#log.warn({ client: c.id, bufferedBytes: c.res.writableLength }, 'an event-stream client reads too slowly: dropped (the station does not wait for readers)');
        c.res.destroy();
        continue;
      }
      c.res.write(chunk);
    }
  }
}
