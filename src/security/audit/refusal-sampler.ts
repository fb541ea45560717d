import { createSampler } from "../../util/rate-limiter.js";

/**
 * How often refusals that anyone can cause at will are audited, per key: a
 * burst of 20, then one every 10 s. Every audit entry is signed and
 * replicates to every member, so an unlimited one would let a flood of
 * refused requests flood the mesh's audit logs.
 */
export const REFUSAL_AUDIT_ALLOWANCE = { framesPerSecond: 0.1, burst: 20 } as const;

/**
 * The reason to audit a refusal of `key` with, within
 * {@link REFUSAL_AUDIT_ALLOWANCE}, or undefined for one held back; one let
 * through after some were held back says how many (`what` names them).
 */
export function refusalAuditSampler(options: { maxKeys: number; what: string; now?: () => number }): (key: string, reason: string) => string | undefined {
  const sample = createSampler({ ...REFUSAL_AUDIT_ALLOWANCE, maxPeers: options.maxKeys, ...(options.now !== undefined && { now: options.now }) });
  return (key, reason) => {
    const skipped = sample(key);
    if (skipped === undefined) return undefined;
    return skipped === 0 ? reason : `${reason} (and ${skipped} ${options.what} not audited since the last audited one: over 20 in a burst, or one every 10 s)`;
  };
}
