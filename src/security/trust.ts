/** How far a device is trusted, lowest first (identity/ decides a device's level). */
export type TrustLevel = "untrusted" | "verified" | "trusted";

/** All trust levels, lowest first. */
export const TRUST_LEVELS: readonly TrustLevel[] = ["untrusted", "verified", "trusted"];

/** Rank of a level for comparisons; unknown strings rank below `untrusted`. */
export function trustRank(level: string): number {
  return TRUST_LEVELS.indexOf(level as TrustLevel);
}

/** True when `level` is at least `minimum`. */
export function meetsTrust(level: string, minimum: TrustLevel): boolean {
  return trustRank(level) >= trustRank(minimum);
}
