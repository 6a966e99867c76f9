import { mkdir, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../contract.js';
import { LinegateError, messageOf } from '../errors.js';
import { fsyncDir } from '../durable-fs.js';
import { Deployment } from './types.js';

/**
 * The activations of a station's models, one JSON line each, appended and fsync'd before a switch
 * is acknowledged: after any crash the station comes back on the last model the journal names.
 * A torn last line (a crash mid-append) is the one line that can be bad: it is skipped and said.
 */
export class DeployJournal {
  readonly file: string;
  readonly #entries: Deployment[];

  private constructor(file: string, entries: Deployment[]) {
    this.file = file;
    this.#entries = entries;
  }

  static async open(file: string, log: Logger): Promise<DeployJournal> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new DeployJournal(file, []);
      throw new LinegateError('LG_ERR_DEPLOY_JOURNAL', [file, messageOf(e)], { cause: e });
    }
    const entries: Deployment[] = [];
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let parsed: ReturnType<typeof Deployment.safeParse>;
      try {
        parsed = Deployment.safeParse(JSON.parse(line));
      } catch {
        parsed = Deployment.safeParse(undefined);
      }
      if (parsed.success) entries.push(parsed.data);
      else log.warn({ file, line: i + 1 }, 'a deploy journal line does not parse (a crash mid-append?): skipped');
    });
    return new DeployJournal(file, entries);
  }

  /** Every activation, oldest first. */
  get entries(): readonly Deployment[] {
    return this.#entries;
  }

  /**
   * The deploys and rollbacks since the station file last named `base` (its model's folder and
   * weights), replayed as a stack, oldest first: a deploy goes on top, a rollback takes the top off
   * and names what is on top now. Entries made while the file named another model are not part of
   * it: an edited station file starts anew.
   */
  chain(base: Deployment['base']): Deployment[] {
    const entries = this.#entries;
    let from = entries.length;
    while (from > 0 && sameBase(entries[from - 1]!.base, base)) from--;
    const stack: Deployment[] = [];
    for (const e of entries.slice(from)) {
      if (e.action === 'rollback') {
        stack.pop();
        // Back to the file's model: nothing on top. Else the rollback's entry (who, when) stands for what it returned to.
        if (stack.length > 0) stack[stack.length - 1] = e;
      } else stack.push(e);
    }
    return stack;
  }

  /** Appends and fsyncs one activation; only then is it part of what a restart restores. */
  async append(d: Deployment): Promise<void> {
    const line = `${JSON.stringify(Deployment.parse(d))}\n`;
    try {
      const dir = path.dirname(this.file);
      const fresh = this.#entries.length === 0;
      await mkdir(dir, { recursive: true });
      const fh = await open(this.file, 'a');
      try {
        await fh.writeFile(line);
        await fh.sync();
      } finally {
        await fh.close();
      }
      // A new file's directory entry must be durable too, or a power cut could lose the whole journal.
      if (fresh) await fsyncDir(dir);
    } catch (e) {
      throw new LinegateError('LG_ERR_DEPLOY_JOURNAL', [this.file, messageOf(e)], { cause: e });
    }
    this.#entries.push(d);
  }
}

const sameBase = (a: Deployment['base'], b: Deployment['base']): boolean => a !== undefined && b !== undefined && a.dir === b.dir && a.sha256 === b.sha256;
