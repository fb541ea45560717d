import { BLOBS_PROTOCOL, BlobClient, startBlobService, type BlobService } from "../../protocols/blobs/index.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { defineService, type DefinedService } from "../services/mesh-service.js";
import type { ServedTrees } from "../registry/served-trees.js";
import { grantedReads } from "./grant-reads.js";
import type { SharedTrees } from "./shared-trees.js";

/** The blob protocol as a node runs it: serving the trees shared here to the peers granted them, and fetching for this node. */
export interface RunningBlobs {
  readonly service: BlobService;
  readonly client: BlobClient;
  membersChanged(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * See {@link RunningBlobs}: blobs are read from the store, and from snapshot sources the node adds to the server.
 * A task's tree goes to the members granted it here, and to a member presenting a grant its submitter signed
 * (`isRevoked`: a revoked submitter's grants count for nothing); a published tree (`published`) to every member
 * the policies' trust requirement does not refuse (`publishedRefusal`: why it refuses a member, audited).
 */
export function blobService(options: { store: BlobStore; shared: SharedTrees; published: ServedTrees; isRevoked: (deviceId: string) => boolean; publishedRefusal?: (peer: string) => string | undefined }): DefinedService<RunningBlobs> {
  return defineService(BLOBS_PROTOCOL, async (context) => {
    const { shared, store, published } = options;
    const mayFetchPublished = (peer: string, treeId: string): boolean => {
      const refusal = options.publishedRefusal?.(peer);
      if (refusal !== undefined) context.audit({ action: "registry.fetch", peer, resource: treeId, result: "denied", reason: refusal });
      return refusal === undefined;
    };
    const byGrant = grantedReads({ shared, meshId: () => context.meshId() ?? "", isRevoked: options.isRevoked, audit: context.audit });
    const service = await startBlobService({
      libp2p: context.libp2p,
      isMember: context.isMember,
      authorize: (peer, treeId, grant) => context.isMember(peer) && ((published.has(treeId) && mayFetchPublished(peer, treeId)) || shared.authorize(peer, treeId) || byGrant(peer, treeId, grant)),
      treeBlobs: (treeId) => shared.treeBlobs(treeId) ?? published.treeBlobs(treeId),
      tree: (treeId) => shared.tree(treeId) ?? published.tree(treeId),
      sources: [store],
      onError: (peer, error) => context.report(error, peer),
    });
    const client = new BlobClient({ libp2p: context.libp2p, onPeerError: (peer, error) => context.report(error, peer) });
    return {
      service,
      client,
      membersChanged: () => service.membersChanged(),
      stop: async () => {
        await client.close();
        await service.stop();
      },
    };
  });
}
