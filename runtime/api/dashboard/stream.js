// The station's event stream (/api/events) with our own reconnect, and the freshness of what the
// page shows. The browser's own EventSource retry gives up for good once a restarting station
// answers 503 or the content type is wrong, so every error closes the source and a new one is
// opened after a growing pause: a station that comes back is found again, whatever it answered.

const BACKOFF_MS = [500, 1000, 2000, 3000, 5000];

export class Stream {
  #url;
  #handlers;
  #source = null;
  #attempt = 0;
  #timer = null;
  #closed = false;
  state = 'connecting';

  /** handlers: { result(record), model(body), heartbeat(), open(), state(name) } */
  constructor(url, handlers) {
    this.#url = url;
    this.#handlers = handlers;
  }

  start() {
    this.#connect();
    return this;
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#source?.close();
  }

  #connect() {
    if (this.#closed) return;
    this.#setState('connecting');
    const source = new EventSource(this.#url);
    this.#source = source;
    source.addEventListener('open', () => {
      this.#attempt = 0;
      this.#setState('live');
      this.#handlers.open?.();
    });
    for (const type of ['result', 'model', 'heartbeat']) {
      source.addEventListener(type, (e) => {
        let data;
        try {
          data = JSON.parse(e.data);
        } catch {
          return; // a torn event: the next one is whole
        }
        this.#handlers[type]?.(data);
      });
    }
    source.addEventListener('error', () => {
      if (this.#source !== source) return;
      source.close();
      this.#source = null;
      this.#setState('down');
      const wait = BACKOFF_MS[Math.min(this.#attempt++, BACKOFF_MS.length - 1)];
      this.#timer = setTimeout(() => this.#connect(), wait);
    });
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#handlers.state?.(state);
  }
}

/**
 * When the page last heard from the station (an event, or an answer to a poll). Data is stale
 * when the stream is not up, or when nothing was heard for `afterMs`.
 */
export class Freshness {
  lastContact = 0;
  lastResult = 0;

  touch(now = Date.now()) {
    this.lastContact = now;
  }

  result(now = Date.now()) {
    this.lastResult = now;
    this.lastContact = now;
  }

  stale(streamState, afterMs, now = Date.now()) {
    return streamState !== 'live' || this.lastContact === 0 || now - this.lastContact > afterMs;
  }
}
