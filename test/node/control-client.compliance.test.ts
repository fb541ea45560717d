import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ControlClientAdapter } from "../../node/control/control-client.js";
import { startNodeControl } from "../../node/control/node-control.js";
import { runtimeAdapterCompliance } from "../compliance/runtime-adapter.js";
import { startNodes } from "../helpers/mesh.js";

// The CLI's main path: a real node serving its control socket as `coderclaw start` does
// (its owner's calls audited and authorised), and the client the CLI connects with.
runtimeAdapterCompliance("ControlClientAdapter over a node's control socket", async () => {
  const mesh = await startNodes(1);
  const node = mesh.nodes[0]!;
  const socketPath = join(mesh.homes[0]!, "control.sock");
  const token = randomBytes(16).toString("hex");
  const server = await startNodeControl(node, { socketPath, token });
  const adapter = await ControlClientAdapter.connect(socketPath, token);
  return {
    adapter,
    cleanup: async () => {
      await adapter.close();
      await server.close();
      await mesh.stop();
    },
  };
});
