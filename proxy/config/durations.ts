// Durations: an integer number of seconds (as upstream) or a string with one unit
// ("1500ms", "30s", "5m", "2h", "1d"), in milliseconds internally.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Node timers overflow (and then fire after 1 ms) beyond 2^31-1 ms: refuse what we cannot honour. */
export const MAX_DURATION_MS = 24 * 86_400_000;

/** Milliseconds, or an error message describing what was wrong. */
export function parseDuration(value: unknown, allowZero: boolean): number | { error: string } {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) {
      return { error: `expected whole seconds or a string like "1500ms", got ${value}` };
    }
    ms = value * 1000;
  } else if (typeof value === 'string') {
    const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(value);
    if (!m) {
      return {
        error: `invalid duration "${value}" (expected an integer number of seconds, or a number followed by one of ms, s, m, h, d, e.g. "1500ms", "30s", "5m")`,
      };
    }
    ms = Number(m[1]) * UNIT_MS[m[2]];
  } else {
    return { error: 'expected a duration (integer seconds or a string like "30s")' };
  }
  if (ms < 0) return { error: 'a duration cannot be negative' };
  if (ms === 0 && !allowZero) return { error: 'must be greater than zero' };
  if (ms > MAX_DURATION_MS) return { error: 'too long (at most 24 days, "24d")' };
  return ms;
}
