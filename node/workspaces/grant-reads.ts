import { createPeerRateLimiter } from "../../src/util/rate-limiter.js";
import { REFUSAL_AUDIT_ALLOWANCE } from "../../src/security/audit/refusal-sampler.js";
import type { ServiceAuditEntry } from "../services/mesh-service.js";
import type { SharedTrees } from "./shared-trees.js";
import { grantRefusal } from "./tree-grants.js";

/** Dependencies of {@link grantedReads}. */
export interface GrantedReadsOptions {
  shared: SharedTrees;
  /** This node's mesh id, which a grant must name. */
  meshId: () => string;
  isRevoked: (deviceId: string) => boolean;
  audit: (entry: ServiceAuditEntry) => void;
  now?: () => number;
}

/**
 * The holder's side of grants: whether `peer` may read a tree held here
 * (a submission's snapshot, a task's input on its executor, a task's result
 * wherever it was fetched to) by a grant its submitter signed, or by being
 * that submitter. A refusal of a
 * tree held here is audited with what was wrong (at most a burst of 20, then
 * one every 10 s: any member can ask as often as it likes); a tree not held
 * here is refused unaudited, and reads the same to the asker.
 */
export function grantedReads(options: GrantedReadsOptions): (peer: string, treeId: string, grant: Uint8Array | undefined) => boolean {
  const audited = createPeerRateLimiter({ ...REFUSAL_AUDIT_ALLOWANCE, maxPeers: 1 });
  const now = options.now ?? Date.now;
  return (peer, treeId, grant) => {
    const owner = options.shared.ownerOf(treeId);
    if (owner === undefined) return false;
    // The submitter reads its own tree wherever it is held (it could sign itself a grant anyway).
    if (peer === owner && !options.isRevoked(owner)) return true;
    const refusal = grantRefusal(grant, { peer, tree: treeId, owner, mesh: options.meshId(), now: now(), isRevoked: options.isRevoked });
    if (refusal !== undefined && audited.take("")) options.audit({ action: "blobs.read", peer, resource: treeId, result: "denied", reason: refusal });
    return refusal === undefined;
  };
}
