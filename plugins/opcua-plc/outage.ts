/** One outage of the PLC link, as health reports it. */
export interface Outage {
  readonly from: string;
  readonly to: string;
  readonly ms: number;
  /** Triggers whose verdict never reached the PLC because of it. */
  readonly cyclesLost: number;
}

/** The PLC link's outages: the one going on (and what it has cost so far), the last one, how many. */
export class OutageLog {
  #current: { since: number; cyclesLost: number } | undefined;
  #last: Outage | undefined;
  #count = 0;

  get current(): { readonly since: number; readonly cyclesLost: number } | undefined {
    return this.#current;
  }

  get last(): Outage | undefined {
    return this.#last;
  }

  get count(): number {
    return this.#count;
  }

  begin(): void {
    this.#current ??= { since: Date.now(), cyclesLost: 0 };
  }

  /** A cycle lost while the link is down; nothing outside an outage. */
  lost(): void {
    if (this.#current !== undefined) this.#current.cyclesLost++;
  }

  /** The link is back and reconciled; returns the outage that ended, if one was going on. */
  end(): Outage | undefined {
    const o = this.#current;
    if (o === undefined) return undefined;
    const now = Date.now();
    this.#last = { from: new Date(o.since).toISOString(), to: new Date(now).toISOString(), ms: now - o.since, cyclesLost: o.cyclesLost };
    this.#count++;
    this.#current = undefined;
    return this.#last;
  }
}
