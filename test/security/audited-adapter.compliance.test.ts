import { AuditedAdapter } from "../../node/security/audited-adapter.js";
import { AuditLog, generateSigner, SecurityService } from "../../src/security/index.js";
import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { runtimeAdapterCompliance } from "../compliance/runtime-adapter.js";
import { tempDir } from "../helpers/temp-dir.js";
import { meshIdFor, tempLevel } from "./helpers.js";

// The owner's runtime of the control socket, here around the in-process adapter,
// recording into a real security service's signed audit log.
runtimeAdapterCompliance("AuditedAdapter around LocalTransportAdapter", async () => {
  const dir = tempDir("cc-audited-");
  const level = await tempLevel();
  const device = generateSigner();
  const service = new SecurityService({ meshId: meshIdFor("a"), signer: device, audit: new AuditLog({ db: level.db, signer: device }), rootAdmins: [device.peerId] });
  const local = await LocalTransportAdapter.open({ dataDir: dir.path });
  const adapter = new AuditedAdapter(local, (body) => service.record(body), device.peerId);
  return {
    adapter,
    cleanup: async () => {
      await adapter.close();
      await service.audit.close();
      await level.dispose();
      dir.remove();
    },
  };
});
