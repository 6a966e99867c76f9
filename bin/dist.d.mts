export const ROOT: string;
export const DIST: string;
export const MANIFEST: string;
export function listSources(): string[];
export function freshness(): { fresh: true } | { fresh: false; why: string };
