import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { createHttpServer } from "../../node/http/index.js";
import { runtimeAdapterCompliance } from "../compliance/runtime-adapter.js";
import { tempDir } from "../helpers/temp-dir.js";
import { TOKENS, authenticate } from "./helpers.js";

// The same suite the LocalTransportAdapter passes, here through a real server on
// 127.0.0.1 in front of the real engine. The caller is an admin so the suite's
// own sessionIds are not refused by session isolation, which server.test.ts covers.
runtimeAdapterCompliance("HTTPTransportAdapter over the HTTP server", async () => {
  const dir = tempDir("cc-http-compliance-");
  const local = await LocalTransportAdapter.open({ dataDir: dir.path });
  const server = await createHttpServer({ adapter: local, authenticate });
  const adapter = new HTTPTransportAdapter({ baseUrl: server.url, token: TOKENS.admin });
  return {
    adapter,
    cleanup: async () => {
      await adapter.close();
      await server.close();
      await local.close();
      dir.remove();
    },
  };
});
