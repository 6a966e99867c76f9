import { LinegateError } from '../../runtime/errors.js';

/**
 * Whether one plugin instance is still open. The contract asks of every plugin itself, not only of
 * the runtime's wrapper around it, that close() is safe twice and that nothing runs after it: a
 * stage called after its close refuses (LG_ERR_PLUGIN_CLOSED), a source yields no more frames.
 */
export class InstanceState {
  readonly #step: string;
  readonly #plugin: string;
  #closed = false;

  constructor(step: string, plugin: string) {
    this.#step = step;
    this.#plugin = plugin;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Throws LG_ERR_PLUGIN_CLOSED once the instance is closed. */
  assertOpen(): void {
    if (this.#closed) throw new LinegateError('LG_ERR_PLUGIN_CLOSED', [this.#step, this.#plugin], { step: this.#step });
  }

  /** `run`, refusing once the instance is closed. */
  guard<A extends unknown[], R>(run: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A): Promise<R> => {
      this.assertOpen();
      return run(...args);
    };
  }
}
