// HEAP_GROWTH_PERCENT: how far V8's old generation may grow past its live
// size (src/heapGrowth.ts). The effect on RSS is measured by `npm run bench`;
// here the setting's parsing: a default, 0 for V8's own heuristics, and a
// bad value stops start-up naming the variable.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const base = { NODE_ENV: 'development' };

describe('HEAP_GROWTH_PERCENT', () => {
  it('defaults to 30 and takes 0 (V8 decides) up to 300', () => {
    expect(loadConfig(base).HEAP_GROWTH_PERCENT).toBe(30);
    expect(loadConfig({ ...base, HEAP_GROWTH_PERCENT: '0' }).HEAP_GROWTH_PERCENT).toBe(0);
    expect(loadConfig({ ...base, HEAP_GROWTH_PERCENT: '300' }).HEAP_GROWTH_PERCENT).toBe(300);
  });

  it.each(['-1', '301', '12.5', 'lots'])('refuses %s, naming the variable', (value) => {
    expect(() => loadConfig({ ...base, HEAP_GROWTH_PERCENT: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, HEAP_GROWTH_PERCENT: value })).toThrow(/HEAP_GROWTH_PERCENT/);
  });
});
