/** Builds dist/ unless it is fresh (see build.mjs). */
export function build(): Promise<{ built: boolean; why?: string; files?: number; ms?: number }>;
