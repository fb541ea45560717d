// Embed a local-only CoderClaw runtime in a Node app: submit a task and follow it.
// Run: node examples/local-runtime.mjs   (data goes to $CODERCLAW_HOME or ~/.coderclaw)
import { CoderClawRuntime, LocalTransportAdapter } from "coderclaw/transport";

const context = { dataDir: process.env.CODERCLAW_HOME };
const adapter = new LocalTransportAdapter(context);
const runtime = new CoderClawRuntime(adapter, "local-only");

const task = await runtime.submitTask({
  description: "Implement feature X",
  input: "Add authentication to the API",
  agentId: "echo",
});
for await (const update of runtime.streamTaskUpdates(task.id)) console.log(update.status, update.progress);

const done = await runtime.getTaskState(task.id);
console.log("output:", done?.output);
await runtime.close();
