import { InvalidArgumentError } from 'commander';

/* Parsers for option values: a bad value is a usage error naming the option (commander adds it). */

export const positiveInt = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

export const integer = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
};

export const sizeArg = (v: string): { width: number; height: number } => {
  const m = /^(\d+)x(\d+)$/i.exec(v.trim());
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (m === null || width < 1 || height < 1 || width > 16_384 || height > 16_384) throw new InvalidArgumentError('must be WIDTHxHEIGHT in pixels, e.g. 256x256');
  return { width, height };
};

export const portArg = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('must be a port number, 0-65535 (0 picks a free one)');
  return n;
};

export const nonNegative = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0');
  return n;
};

export const positive = (v: string): number => {
  const n = nonNegative(v);
  if (n === 0) throw new InvalidArgumentError('must be a number > 0');
  return n;
};

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const logLevel = (v: string): string => {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${LOG_LEVELS.join(', ')}`);
  return v;
};

/** One of a fixed set of words. */
export const oneOf =
  <T extends string>(choices: readonly T[]) =>
  (v: string): T => {
    if (!(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${choices.join(', ')}`);
    return v as T;
  };

export const collect = (v: string, acc: string[]): string[] => [...acc, v];
