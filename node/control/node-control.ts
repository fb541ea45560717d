import type { CoderClawNode } from "../create-node.js";
import { runAdmin } from "../node-admin.js";
import { AuditedAdapter } from "../security/audited-adapter.js";
import { startControlServer, type ControlServer } from "./control-server.js";

/** Options of {@link startNodeControl}. */
export interface NodeControlOptions {
  /** Unix socket path, in the data directory. */
  socketPath: string;
  /** Secret a client presents first, kept in a 0600 file beside the socket. */
  token: string;
  /** Where the node serves its HTTP API now, if it does: answered to the `http.url` call. */
  httpUrl?: () => string | undefined;
}

/**
 * The control socket of a running mesh node, as `coderclaw start` serves it: the
 * token holder is the node's owner, acting as the node's own device. Its submits
 * and cancels go through the same authorisation as HTTP and the mesh
 * (`NodeSecurity.authorizeOwner`), and every one is recorded with its outcome.
 */
export function startNodeControl(node: CoderClawNode, options: NodeControlOptions): Promise<ControlServer> {
  const owned = new AuditedAdapter(node.adapter, (body) => node.security.record(body), node.peerId);
  return startControlServer({
    socketPath: options.socketPath,
    token: options.token,
    adapter: owned,
    // `coderclaw ui` hands a session token to the dashboard: only the address the node itself serves may get it,
    // never a port runtime.yaml names, which another local user may hold.
    admin: (method, params) => (method === "http.url" ? Promise.resolve({ url: options.httpUrl?.() ?? null }) : runAdmin(node, method, params)),
    authorize: (access) => node.security.authorizeOwner(access),
  });
}
