import { appendFile, mkdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import type { Logger } from '../../../runtime/contract.js';
import { LinegateError, messageOf } from '../../../runtime/errors.js';
import { yoloLine, type YoloBox } from './dataset-layout.js';

/*
 * The export folder's own state: which results are in it (manifest.jsonl),
 * the YOLO class indices (classes.json, mirrored in yolo/data.yaml). Files are
 * written to a temporary name and renamed, so a crash never leaves half an
 * image; the shared files are changed one job at a time.
 */

export const MANIFEST = 'manifest.jsonl';
export const CLASSES = 'classes.json';
export const DATA_YAML = 'yolo/data.yaml';

const ClassesFile = z.object({ classes: z.array(z.string().min(1)) });
const ManifestId = z.object({ resultId: z.string().min(1) });

export interface Commit {
  readonly resultId: string;
  readonly labelFile?: { readonly rel: string; readonly boxes: readonly YoloBox[] };
  readonly line: Readonly<Record<string, unknown>>;
}

const writeError = (file: string, e: unknown): LinegateError => new LinegateError('LG_ERR_EXPORT_WRITE', [file, messageOf(e)], { cause: e });

export class DatasetStore {
  readonly out: string;
  readonly #log: Logger;
  readonly #done = new Set<string>();
  #classes: string[] = [];
  /** A class was added since classes.json was last written. */
  #dirtyClasses = false;
  #tail: Promise<unknown> = Promise.resolve();
  #seq = 0;

  private constructor(out: string, log: Logger) {
    this.out = out;
    this.#log = log;
  }

  /** Creates the folder if needed and learns what an earlier run exported, so a redelivered job is not exported twice. */
  static async open(out: string, log: Logger): Promise<DatasetStore> {
    const s = new DatasetStore(path.resolve(out), log);
    try {
      await mkdir(s.out, { recursive: true });
    } catch (e) {
      throw writeError(s.out, e);
    }
    await s.#loadManifest();
    await s.#loadClasses();
    await s.#writeDataYaml();
    log.info({ out: s.out, exported: s.#done.size, classes: s.#classes.length }, 'dataset folder opened');
    return s;
  }

  get exported(): number {
    return this.#done.size;
  }

  get classes(): readonly string[] {
    return this.#classes;
  }

  has(resultId: string): boolean {
    return this.#done.has(resultId);
  }

  /** Temporary name, flush, rename: readers see the whole file or none. */
  async writeAtomic(rel: string, data: string | Uint8Array): Promise<void> {
    const file = path.join(this.out, rel);
    const tmp = `${file}.${process.pid}.${++this.#seq}.tmp`;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(tmp, data, { flush: true });
      await rename(tmp, file);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw writeError(file, e);
    }
  }

  /**
   * Class indices, label file, manifest line: in that order and one job at a
   * time, so indices stay stable and manifest lines never interleave. The line
   * comes last: a crash before it means the job is exported again, whole.
   */
  commit(c: Commit): Promise<void> {
    return this.#serial(async () => {
      if (c.labelFile !== undefined) {
        const lines = c.labelFile.boxes.map((b) => yoloLine(this.#classOf(b.label), b));
        await this.#persistClasses();
        await this.writeAtomic(c.labelFile.rel, lines.length === 0 ? '' : `${lines.join('\n')}\n`);
      }
      try {
        await appendFile(path.join(this.out, MANIFEST), `${JSON.stringify(c.line)}\n`, { flush: true });
      } catch (e) {
        throw writeError(path.join(this.out, MANIFEST), e);
      }
      this.#done.add(c.resultId);
    });
  }

  /** Waits for the shared files to be written. */
  async settle(): Promise<void> {
    await this.#tail;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** First seen, first index; never renumbered, since label files already written use the old numbers. */
  #classOf(label: string): number {
    let i = this.#classes.indexOf(label);
    if (i < 0) {
      i = this.#classes.push(label) - 1;
      this.#dirtyClasses = true;
    }
    return i;
  }

  async #persistClasses(): Promise<void> {
    if (!this.#dirtyClasses) return;
    await this.writeAtomic(CLASSES, `${JSON.stringify({ classes: this.#classes }, null, 2)}\n`);
    await this.#writeDataYaml();
    this.#dirtyClasses = false;
    this.#log.info({ classes: this.#classes }, 'YOLO class added');
  }

  async #writeDataYaml(): Promise<void> {
    const doc = { path: path.join(this.out, 'yolo'), train: 'images', val: 'images', names: new Map(this.#classes.map((n, i) => [i, n])) };
    await this.writeAtomic(DATA_YAML, `# written by linegate dataset-export; indices are stable (see ../${CLASSES})\n${stringify(doc)}`);
  }

  async #loadClasses(): Promise<void> {
    const file = path.join(this.out, CLASSES);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return; // a new dataset
    }
    let parsed: z.ZodSafeParseResult<z.infer<typeof ClassesFile>>;
    try {
      parsed = ClassesFile.safeParse(JSON.parse(text));
    } catch (e) {
      throw writeError(file, new Error(`it exists but is not JSON (${messageOf(e)}): repair or remove it`));
    }
    if (!parsed.success) throw writeError(file, new Error(`it exists but is not {"classes": [names]}: repair or remove it`));
    this.#classes = [...parsed.data.classes];
  }

  /** A torn last line (a crash mid-append) is cut off so the next line starts clean; other bad lines are skipped. */
  async #loadManifest(): Promise<void> {
    const file = path.join(this.out, MANIFEST);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return;
    }
    const lines = text.split('\n');
    const tail = lines.pop() ?? '';
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      const id = idOf(line);
      if (id === undefined) this.#log.warn({ file, line: i + 1 }, 'manifest line is not JSON with a resultId: skipped');
      else this.#done.add(id);
    }
    if (tail !== '') {
      try {
        await truncate(file, Buffer.byteLength(text) - Buffer.byteLength(tail));
      } catch (e) {
        throw writeError(file, e);
      }
      this.#log.warn({ file }, 'manifest ended in a torn line (a crash mid-write): removed; that job is exported again when redelivered');
    }
  }
}

function idOf(line: string): string | undefined {
  try {
    const p = ManifestId.safeParse(JSON.parse(line));
    return p.success ? p.data.resultId : undefined;
  } catch {
    return undefined;
  }
}
