import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClientAdapter } from "../../node/control/control-client.js";
import type { ControlServer } from "../../node/control/control-server.js";
import { startNodeControl } from "../../node/control/node-control.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { eventually, startNodes } from "../helpers/mesh.js";

/**
 * A retry submits the same work again, so on the control socket it needs what
 * submitting it needs: the agent's skills too. A member's owner whose grants do
 * not reach shell-exec may not run a failed shell task again.
 */
describe("control socket: a retry is decided as a submit of its agent", () => {
  let stop: () => Promise<void>;
  let dev: CoderClawNode;
  let server: ControlServer;
  let control: ControlClientAdapter;

  beforeAll(async () => {
    const mesh = await startNodes(2, () => ({ agents: [createShellAgent()] }));
    stop = mesh.stop;
    const founder = mesh.nodes[0]!;
    dev = mesh.nodes[1]!;
    await founder.createMesh("control-retry");
    const { invite } = await founder.pairing.invite("trusted", 60_000);
    await dev.pairing.join(invite);
    await dev.membership.add(founder.membership.statements());
    await eventually(() => dev.security.current.grants.rolesOf(dev.peerId).has("developer"), 15_000, "developer grant");
    const token = randomBytes(16).toString("hex");
    const socketPath = join(mesh.homes[1]!, "control.sock");
    server = await startNodeControl(dev, { socketPath, token });
    control = await ControlClientAdapter.connect(socketPath, token);
  }, 60_000);

  afterAll(async () => {
    await control?.close();
    await server?.close();
    await stop?.();
  });

  const codeOf = (run: Promise<unknown>): Promise<string | undefined> =>
    run.then(() => undefined, (err: unknown) => (err instanceof CoderClawError ? err.code : String(err)));

  it("refuses the retry of a failed shell task to an owner refused shell, as it refuses the submit", async () => {
    expect(await codeOf(control.submitTask({ description: "shell", input: "true", agentId: "shell" }))).toBe("PERMISSION_DENIED");
    // A shell task of this node that failed: submitted in process, as an embedding app may, or before a policy narrowed the owner.
    const failed = await dev.adapter.submitTask({ description: "shell", input: "exit 3", agentId: "shell" }, { route: "local" });
    await eventually(async () => (await dev.adapter.getTaskState(failed.id))?.status === "failed", 15_000, "failed shell task");
    expect(await codeOf(control.retryTask(failed.id))).toBe("PERMISSION_DENIED");
    expect((await dev.adapter.listTasks()).filter((t) => t.parentTaskId === failed.id)).toEqual([]);
  }, 30_000);
});
