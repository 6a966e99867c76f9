import { execFileSync } from 'node:child_process';

/**
 * A real full disk for a test: a tmpfs of `size` (e.g. "2m") mounted on `dir`. Mounting needs root;
 * where it cannot, the answer says why, for the test to skip and say so.
 */
export function mountTestTmpfs(dir: string, size: string): { readonly mounted: true } | { readonly mounted: false; readonly why: string } {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return { mounted: true };
  } catch (e) {
    return { mounted: false, why: `cannot mount a ${size} tmpfs here (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): the real full-disk test needs root` };
  }
}

export function unmountTestTmpfs(dir: string): void {
  execFileSync('umount', [dir]);
}
