import { ClusterTransportAdapter } from "../../node/cluster-adapter.js";
import { runtimeAdapterCompliance } from "../compliance/runtime-adapter.js";
import { formMesh, startNodes } from "../helpers/mesh.js";

// Every task is pinned to the second node, so the whole suite crosses the mesh:
// signed submission, remote streams, remote cancel and queries.
runtimeAdapterCompliance("ClusterTransportAdapter (tasks run on a peer)", async () => {
  const mesh = await startNodes(2);
  const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
  await formMesh(mesh.nodes);
  const adapter = new ClusterTransportAdapter({
    selfId: a.peerId,
    engine: a.core.engine,
    agents: a.core.agents,
    directory: a.directory,
    client: a.client,
    dispatcher: a.dispatcher,
    defaultRoute: b.peerId,
  });
  return { adapter, cleanup: mesh.stop };
});
