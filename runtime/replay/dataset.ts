import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError } from '../errors.js';
import { GOOD_NAMES, goodBy } from './metrics.js';
import { listImages } from '../../plugins/source-folder/index.js';

/*
 * A labelled folder: one sub-folder per class, images inside (deeper folders
 * allowed), annotations optional. Folders named good, ok or pass (or named
 * with --good) hold good parts. The order is the byte order of the relative
 * paths, so every machine replays the same sequence.
 */

export { GOOD_NAMES } from './metrics.js';
export const REPLAY_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'];
/** Folders that hold annotations, never images to inspect. */
const ANNOTATION_DIRS = new Set(['annotations', 'labels', 'masks', 'ground_truth', 'groundtruth']);

export type AnnotationRef = { readonly kind: 'voc' | 'yolo' | 'mask'; readonly file: string };

export interface LabelledImage {
  /** Relative to the folder, forward slashes. */
  readonly file: string;
  readonly abs: string;
  /** The sub-folder it came from. */
  readonly folder: string;
  /** The class: the sub-folder's name, kept as it is for good parts too (`ok_front`). */
  readonly truth: string;
  /** Whether the class holds good parts (good, ok, pass, or a --good name). */
  readonly good: boolean;
  readonly annotation?: AnnotationRef;
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

export async function listLabelled(dir: string, good: readonly string[] = []): Promise<LabelledImage[]> {
  const root = path.resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new LinegateError('LG_ERR_REPLAY_LABELS', [root, 'is not a folder']);
  const isGood = goodBy([...GOOD_NAMES, ...good]);
  // folder-source's own listing (byte order, hidden files skipped, links followed), minus annotation folders.
  const files = (await listImages(root, REPLAY_EXTENSIONS, true)).map((e) => e.file).filter((f) => !f.split('/').slice(0, -1).some((d) => ANNOTATION_DIRS.has(d.toLowerCase())));
  // A PNG with the stem of another image beside it is that image's mask (MVTec, Magnetic-tile), not a part.
  const stems = new Set(files.filter((f) => path.extname(f).toLowerCase() !== '.png').map(stemOf));
  const images = files.filter((f) => !(path.extname(f).toLowerCase() === '.png' && stems.has(stemOf(f)))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const loose = images.filter((f) => !f.includes('/'));
  if (loose.length > 0) throw new LinegateError('LG_ERR_REPLAY_LABELS', [root, `${loose.length} image(s) (${loose.slice(0, 3).join(', ')}) lie directly in the folder and have no class: put each in a sub-folder named after its class`]);
  if (images.length === 0) throw new LinegateError('LG_ERR_REPLAY_LABELS', [root, `holds no images (${REPLAY_EXTENSIONS.join(' ')}) in class sub-folders`]);
  const out: LabelledImage[] = [];
  for (const file of images) {
    const folder = file.split('/')[0]!;
    const abs = path.join(root, file);
    const annotation = await findAnnotation(abs);
    out.push({ file, abs, folder, truth: folder, good: isGood(folder), ...(annotation === undefined ? {} : { annotation }) });
  }
  return out;
}

const stemOf = (f: string): string => f.slice(0, f.length - path.extname(f).length);

/**
 * The annotation of an image, first found: Pascal VOC XML beside it or in a
 * parallel `Annotations/` folder, YOLO txt beside it or in `labels/`, a mask
 * PNG of the same stem beside it (or `<stem>_mask.png`, or in `masks/` or
 * `ground_truth/`).
 */
async function findAnnotation(abs: string): Promise<AnnotationRef | undefined> {
  const dir = path.dirname(abs);
  const stem = path.basename(abs, path.extname(abs));
  const parent = path.dirname(dir);
  const candidates: AnnotationRef[] = [
    { kind: 'voc', file: path.join(dir, `${stem}.xml`) },
    { kind: 'voc', file: path.join(parent, 'Annotations', `${stem}.xml`) },
    { kind: 'voc', file: path.join(parent, 'annotations', `${stem}.xml`) },
    { kind: 'voc', file: path.join(dir, 'annotations', `${stem}.xml`) },
    { kind: 'yolo', file: path.join(dir, `${stem}.txt`) },
    { kind: 'yolo', file: path.join(parent, 'labels', `${stem}.txt`) },
    { kind: 'yolo', file: path.join(dir, 'labels', `${stem}.txt`) },
    ...(path.extname(abs).toLowerCase() === '.png' ? [] : [{ kind: 'mask' as const, file: path.join(dir, `${stem}.png`) }]),
    { kind: 'mask', file: path.join(dir, `${stem}_mask.png`) },
    { kind: 'mask', file: path.join(dir, 'masks', `${stem}.png`) },
    { kind: 'mask', file: path.join(dir, 'ground_truth', `${stem}.png`) },
    { kind: 'mask', file: path.join(parent, 'masks', path.basename(dir), `${stem}.png`) },
  ];
  for (const c of candidates) if (await exists(c.file)) return c;
  return undefined;
}

/** YOLO class names for a folder: `classes.txt` (one per line) or the `names` of a `data.yaml`, when present. */
export async function yoloNames(dir: string): Promise<string[] | undefined> {
  const txt = await readFile(path.join(dir, 'classes.txt'), 'utf8').catch(() => undefined);
  if (txt !== undefined) return txt.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const yaml = await readFile(path.join(dir, 'data.yaml'), 'utf8').catch(() => undefined);
  if (yaml === undefined) return undefined;
  const { parse } = await import('yaml');
  const names = (parse(yaml) as { names?: unknown } | null)?.names;
  if (Array.isArray(names)) return names.map(String);
  if (names !== null && typeof names === 'object') return Object.entries(names).sort((a, b) => Number(a[0]) - Number(b[0])).map(([, v]) => String(v));
  return undefined;
}
