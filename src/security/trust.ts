import type { TrustLevel } from "../../identity/trust-level.js";

export type { TrustLevel };

/** All trust levels, lowest first. */
export const TRUST_LEVELS: readonly TrustLevel[] = ["untrusted", "verified", "trusted"];

/** Rank of a level for comparisons; strings that are not a level rank below `untrusted`, so a garbled context never passes a trust check. */
export function trustRank(level: string): number {
  return TRUST_LEVELS.indexOf(level as TrustLevel);
}

/** True when `level` is at least `minimum`. */
export function meetsTrust(level: string, minimum: TrustLevel): boolean {
  return trustRank(level) >= trustRank(minimum);
}
