// What a fuzz target is, for scripts/fuzz.mjs and the short property tests: a generator
// of inputs, a way to run one against the real code, and a final check.
import type fc from 'fast-check';

export interface FuzzReport {
  /** Failures the code under test reported as internal (bugs), with their messages. */
  internalErrors: string[];
  /** Connections still open once every deadline has passed. */
  leaks: number;
  /** A few of the inputs whose connections leaked. */
  leaked: string[];
  /** How long the final wait for the deadlines took, ms. */
  drainMs: number;
}

export interface FuzzTarget<I> {
  readonly name: string;
  readonly arbitrary: fc.Arbitrary<I>;
  /** Feeds one input; resolves once it is sent (its connection may live on). */
  run(input: I): Promise<void>;
  /** Connections open now. */
  readonly open: number;
  /** Waits for every connection to be closed by its deadline, then reports. */
  finish(): Promise<FuzzReport>;
  /** Human-readable form of an input (for a crash report). */
  describe(input: I): string;
}
