import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StaticAgentRegistry } from "../../src/agents/builtin.js";
import { hasCode } from "../../src/contract/errors.js";
import type { TaskStatus } from "../../src/contract/types.js";
import { canTransition, isTerminal } from "../../src/engine/state-machine.js";
import { openLocalCore, type LocalCore } from "../../src/runtime/local-core.js";
import { ExecutionController, settle } from "../helpers/controlled-agent.js";
import { tempDir } from "../helpers/temp-dir.js";

const MAX = 2;

type Cmd =
  | { kind: "submit"; resumable: boolean }
  | { kind: "progress" | "pause" | "resume" | "cancel" | "complete" | "fail"; task: number }
  | { kind: "restart" };

interface ModelTask {
  status: TaskStatus;
  resumable: boolean;
  executing: boolean;
  held?: "completed" | "failed";
}

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("submit" as const), resumable: fc.boolean() }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constantFrom("progress" as const, "pause" as const, "resume" as const, "cancel" as const, "complete" as const, "fail" as const),
      task: fc.nat({ max: 7 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "restart" as const }) },
);

/** Start queued tasks in submission order while fewer than MAX execute. */
function schedule(model: ModelTask[]): void {
  for (const t of model) {
    if (model.filter((m) => m.executing).length >= MAX) return;
    if (t.status === "pending") {
      t.status = "running";
      t.executing = true;
    }
  }
}

/** An agent that cannot resume acts once its task's start is durable: wait (bounded) until every task the model runs has its execution. */
async function executing(ctl: ExecutionController, model: ModelTask[], ids: string[]): Promise<void> {
  for (let i = 0; i < 500 && !model.every((t, k) => !t.executing || ctl.isExecuting(ids[k]!)); i++) await new Promise((r) => setTimeout(r, 2));
}

async function expectRefused(p: Promise<unknown>): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(hasCode(err, "INVALID_TRANSITION")).toBe(true);
}

describe("task state machine against a model", () => {
  it("random submit/progress/pause/resume/cancel/complete/fail/restart sequences agree with the model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 30 }), async (cmds) => {
        const dir = tempDir();
        const ctl = new ExecutionController();
        const agents = new StaticAgentRegistry([ctl.agent("ctl-r", true), ctl.agent("ctl-n", false)]);
        const open = () => openLocalCore({ dataDir: dir.path, agents, maxConcurrentTasks: MAX, shutdownGraceMs: 0 });
        let core: LocalCore = await open();
        const ids: string[] = [];
        const model: ModelTask[] = [];
        try {
          for (const cmd of cmds) {
            if (cmd.kind === "submit") {
              const t = await core.engine.submit({ description: "model", input: "x", agentId: cmd.resumable ? "ctl-r" : "ctl-n" });
              ids.push(t.id);
              model.push({ status: "pending", resumable: cmd.resumable, executing: false });
              schedule(model);
              await executing(ctl, model, ids);
            } else if (cmd.kind === "restart") {
              await core.close();
              ctl.reset();
              for (const t of model) {
                if (t.executing && !t.resumable && !isTerminal(t.status)) t.status = "failed";
                if (t.status === "waiting") {
                  t.executing = false;
                  delete t.held;
                }
                if (t.status !== "running") t.executing = false;
              }
              core = await open();
              schedule(model);
              await executing(ctl, model, ids);
            } else {
              const t = model[cmd.task];
              const id = ids[cmd.task];
              if (!t || !id) continue;
              switch (cmd.kind) {
                case "progress":
                  if (!t.executing) continue;
                  ctl.progress(id, 50);
                  break;
                case "complete":
                case "fail":
                  if (!t.executing || !ctl.isExecuting(id)) continue;
                  if (cmd.kind === "complete") ctl.complete(id);
                  else ctl.fail(id);
                  t.executing = false;
                  if (t.status === "waiting") t.held = cmd.kind === "complete" ? "completed" : "failed";
                  else t.status = cmd.kind === "complete" ? "completed" : "failed";
                  schedule(model);
                  await executing(ctl, model, ids);
                  break;
                case "pause":
                  if (t.status === "running") {
                    await core.engine.pause(id);
                    t.status = "waiting";
                  } else await expectRefused(core.engine.pause(id));
                  break;
                case "resume":
                  if (t.status === "waiting") {
                    await core.engine.resume(id);
                    if (t.held) {
                      t.status = t.held;
                      delete t.held;
                    } else if (!t.executing) {
                      t.status = t.resumable ? "running" : "failed";
                      t.executing = t.resumable;
                    } else t.status = "running";
                  } else await expectRefused(core.engine.resume(id));
                  break;
                case "cancel": {
                  const result = await core.engine.cancel(id);
                  expect(result).toBe(!isTerminal(t.status));
                  if (!isTerminal(t.status)) {
                    t.status = "cancelled";
                    t.executing = false;
                    delete t.held;
                  }
                  await settle();
                  schedule(model);
                  await executing(ctl, model, ids);
                  break;
                }
              }
            }
            await settle();
            for (let i = 0; i < ids.length; i++) {
              const real = await core.engine.getTask(ids[i]!);
              expect(real?.status, `task ${i} after ${JSON.stringify(cmd)}`).toBe(model[i]!.status);
            }
          }
          // Every history is a walk along legal edges from pending, with gap-free sequence numbers.
          for (const id of ids) {
            const events = await core.engine.getTaskEvents(id);
            expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
            let status: TaskStatus = "pending";
            for (const e of events.filter((e) => e.type === "status_changed")) {
              expect(canTransition(status, e.status), `${status} -> ${e.status}`).toBe(true);
              status = e.status;
            }
          }
        } finally {
          await core.close();
          dir.remove();
        }
      }),
      { numRuns: 40 },
    );
  });
});
