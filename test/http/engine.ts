import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import type { TaskUpdateEvent } from "../../src/contract/types.js";
import { LocalTransportAdapter } from "../../src/transport/local-adapter.js";
import { ExecutionController } from "../helpers/controlled-agent.js";
import { tempDir } from "../helpers/temp-dir.js";
import { eventually } from "./helpers.js";

/** The real engine behind the server, with a `manual` agent the test drives step by step. */
export interface Engine {
  adapter: LocalTransportAdapter;
  controller: ExecutionController;
  /** Submits a `manual` task and waits until its executor runs, so the test can drive it. */
  startManual(sessionId?: string): Promise<string>;
  /** The engine's own full history of a task, read in process: what every HTTP subscriber must see. */
  history(taskId: string): Promise<TaskUpdateEvent[]>;
  close(): Promise<void>;
}

/** Opens a LocalTransportAdapter on a fresh data directory with echo, sleep and manual agents. */
export async function openEngine(): Promise<Engine> {
  const dir = tempDir("cc-http-");
  const controller = new ExecutionController();
  const adapter = await LocalTransportAdapter.open({
    dataDir: dir.path,
    agents: createBuiltinRegistry([controller.agent("manual", true)]),
    shutdownGraceMs: 100,
  });
  return {
    adapter,
    controller,
    startManual: async (sessionId = "s-alice") => {
      const task = await adapter.submitTask({ description: "driven by the test", input: "", agentId: "manual", sessionId });
      await eventually(() => controller.isExecuting(task.id));
      return task.id;
    },
    history: async (taskId) => {
      const events: TaskUpdateEvent[] = [];
      for await (const event of adapter.streamTaskUpdates(taskId)) events.push(event);
      return events;
    },
    close: async () => {
      await adapter.close();
      dir.remove();
    },
  };
}
