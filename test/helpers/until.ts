/** Polls until `cond` holds; fails naming `what` (the condition's source by default) after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, o: { readonly ms?: number; readonly what?: string } = {}): Promise<void> {
  const end = Date.now() + (o.ms ?? 10_000);
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${o.what ?? cond.toString()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
