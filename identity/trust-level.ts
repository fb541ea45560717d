/** How far a mesh trusts a device, in increasing order. */
export type TrustLevel = "untrusted" | "verified" | "trusted";

const RANK: Record<TrustLevel, number> = { untrusted: 0, verified: 1, trusted: 2 };

/** Orders trust levels: negative when `a` is below `b`. */
export function compareTrustLevels(a: TrustLevel, b: TrustLevel): number {
  return RANK[a] - RANK[b];
}

/** True when `level` is at least `minimum`. */
export function meetsTrustLevel(level: TrustLevel, minimum: TrustLevel): boolean {
  return RANK[level] >= RANK[minimum];
}

/** Mesh policy knobs trust evaluation depends on. */
export interface TrustPolicy {
  /**
   * How many verified-to-verified hops a chain may take (0: only trusted
   * devices vouch). Default 1: a device verified by a trusted one may vouch
   * for one more device at level verified.
   */
  readonly transitiveDepth: number;
  /** How far in the future a certificate's issuedAt may be and still count (clock skew), ms. */
  readonly clockSkewMs: number;
}

/** The policy used when a mesh sets none. */
export const DEFAULT_TRUST_POLICY: TrustPolicy = { transitiveDepth: 1, clockSkewMs: 5 * 60_000 };

/** One device's standing in a mesh at an evaluation time. */
export interface DeviceTrust {
  readonly deviceId: string;
  readonly level: TrustLevel;
  /** True once a device revocation took effect: permanent. */
  readonly revoked: boolean;
  /** The founder, or the issuer of the certificate the best chain ends with. */
  readonly vouchedBy?: string;
  /** Id of the certificate the best chain ends with (absent for the founder). */
  readonly certId?: string;
  /** Hops from the founder among trusted devices, or verified-to-verified hops for verified ones. */
  readonly depth?: number;
}
