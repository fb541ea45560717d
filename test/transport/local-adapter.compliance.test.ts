import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { runtimeAdapterCompliance } from "../compliance/runtime-adapter.js";
import { tempDir } from "../helpers/temp-dir.js";

runtimeAdapterCompliance("LocalTransportAdapter", async () => {
  const dir = tempDir();
  const adapter = await LocalTransportAdapter.open({ dataDir: dir.path });
  return {
    adapter,
    cleanup: async () => {
      await adapter.close();
      dir.remove();
    },
  };
});
