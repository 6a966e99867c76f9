/*
 * Confidence intervals for a rate k / n (escapes of the defective parts,
 * overkills of the good ones). The exact (Clopper-Pearson) interval is the
 * one to quote: with 0 escapes of 226 the bootstrap collapses to [0, 0] (no
 * resample can hold an escape that the set does not), while the exact
 * interval says the true rate may still be up to 1.62 %. Pure TypeScript:
 * the incomplete beta function and its inverse, no dependency.
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: ~15 significant digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz), converging for x < (a + 1) / (a + b + 2). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b): the Beta(a, b) distribution function at x. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  // The fraction converges fast on one side of the mean; the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) gives the other.
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(x, a, b)) / a : 1 - (front * betaFraction(1 - x, b, a)) / b;
}

/**
 * The p-quantile of Beta(a, b): the x with I_x(a, b) = p. Bisection: I_x is monotone in x, so 60
 * halvings pin x to 1e-18 whatever the shape, where Newton steps can leave [0, 1] on skewed betas.
 */
export function betaQuantile(p: number, a: number, b: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 100 && hi - lo > 1e-15; i++) {
    const mid = (lo + hi) / 2;
    if (incompleteBeta(mid, a, b) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The exact (Clopper-Pearson) two-sided interval for k successes in n trials; null for n = 0. */
export function clopperPearson(k: number, n: number, confidence = 0.95): [number, number] | null {
  if (n === 0) return null;
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || k > n) throw new RangeError(`clopperPearson: need integers 0 <= k <= n, got k=${k}, n=${n}`);
  const alpha = 1 - confidence;
  const lower = k === 0 ? 0 : betaQuantile(alpha / 2, k, n - k + 1);
  const upper = k === n ? 1 : betaQuantile(1 - alpha / 2, k + 1, n - k);
  return [lower, upper];
}

/** A seeded generator (mulberry32): the same set and seed give the same intervals. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A rate with both of its 95 % intervals, for the reports. */
export interface RateInterval {
  /** Misses (escapes or overkills) and the parts they are counted among. */
  readonly k: number;
  readonly n: number;
  readonly rate: number | null;
  /** Clopper-Pearson: the one to quote (it does not collapse at 0 or n). */
  readonly exact95: [number, number] | null;
  /** Percentile bootstrap over resampled images: how much the rate moves with the sample, [rate, rate] when k is 0 or n. */
  readonly bootstrap95: [number, number] | null;
}

/**
 * Both intervals of k / n. The bootstrap here resamples the n parts alone (a binomial resample), which
 * is what resampling the whole image set does to this rate, up to the varying n.
 */
export function rateInterval(k: number, n: number, o: { bootstrap?: number; seed?: number } = {}): RateInterval {
  if (n === 0) return { k, n, rate: null, exact95: null, bootstrap95: null };
  const B = o.bootstrap ?? 1000;
  const next = seededRandom(o.seed ?? 1);
  const p = k / n;
  const draws: number[] = [];
  for (let b = 0; b < B; b++) {
    let hits = 0;
    for (let i = 0; i < n; i++) if (next() < p) hits++;
    draws.push(hits / n);
  }
  draws.sort((x, y) => x - y);
  const at = (q: number): number => draws[Math.min(B - 1, Math.max(0, Math.ceil(q * B) - 1))]!;
  return { k, n, rate: p, exact95: clopperPearson(k, n), bootstrap95: B === 0 ? null : [at(0.025), at(0.975)] };
}
