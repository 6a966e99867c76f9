import { describe, expect, it } from 'vitest';
import { RecentCount } from '../../runtime/observability/rate.js';

describe('the recent count', () => {
  it('counts the events of the last window and forgets older ones, in constant memory', () => {
    const c = new RecentCount(1000, 0);
    for (let t = 0; t < 500; t += 5) c.add(t); // 100 events in the first half second
    expect(c.count(500)).toBe(100);
    expect(c.perSecond(500)).toBe(200); // over the half second it has seen, not the whole window
    expect(c.count(1400)).toBeLessThan(100);
    expect(c.count(1600)).toBe(0);
    expect(c.perSecond(1600)).toBe(0);
  });
});
