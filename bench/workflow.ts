import "../src/polyfills.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskSubmitRequest } from "../src/contract/types.js";
import { openLocalCore } from "../src/runtime/local-core.js";
import { LocalTransportAdapter } from "../src/transport/local-adapter.js";
import { checkWorkflow, createWorkflowCoordinator, documentWorkflowStore, type StepDraft, type WorkflowDefinition, type WorkflowStore } from "../src/workflows/index.js";
import { percentile, printResult, sized } from "./report.js";

/**
 * `npm run bench:workflow`: what coordinating costs, against the same no-op
 * tasks submitted directly to the same runtime, measured in one run. The same
 * tasks: a workflow's steps are tasks of one session of their own (they share
 * a workspace, made for the run) carrying an idempotency key, so the direct
 * tasks of each run are too; `bare` is the same without either (tasks of the
 * default session), shown beside for what sessions and keys cost the tasks
 * themselves:
 * - a chain of N steps (each after the one before) against N tasks submitted
 *   one after another, each once the one before completed;
 * - a fan-out of N steps with no dependencies against N tasks submitted at once.
 * After the same warm-up of all four ({@link WARM_UP} rounds), each shape runs alternately, workflow and direct, the one first in one round
 * second in the next (what one leaves behind, garbage to collect, falls on the
 * other as often as on itself), and the medians are compared; `pairedRatio` is
 * the median of each round's own ratio, which a load that changes over the run
 * moves less.
 * A workflow's time ends when `wait` answers; what the coordinator still writes
 * then (a completed end is written after `wait` answered) is let finish before
 * the next measurement starts, untimed, so no run pays for the one before: the
 * store tells when the end is durable (reading the document back to see would
 * load it again and keep it in memory).
 */

const N = sized(100, 10);
const ROUNDS = sized(101, 1);
const WARM_UP = sized(20, 1);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "cc-bench-wf-"));
  const core = await openLocalCore({ dataDir: dir, maxConcurrentTasks: N + 1 });
  const adapter = new LocalTransportAdapter(core);
  const documents = documentWorkflowStore(core.store);
  const endsWritten = new Set<string>();
  let endWritten: (() => void) | undefined;
  const store: WorkflowStore = {
    ...documents,
    async update(id, change) {
      await documents.update(id, change);
      if (change.status === undefined || change.status === "running") return;
      endsWritten.add(id);
      endWritten?.();
    },
  };
  const coordinator = createWorkflowCoordinator({ runtime: adapter, store });
  let runs = 0;
  /** The requests of one direct run: as a workflow's steps are, or `bare`. */
  const requests = (bare: boolean): ((i: number) => TaskSubmitRequest) => {
    const session = `bench-direct-${++runs}`;
    return (i) => ({ description: `no-op ${i}`, input: `${i}`, agentId: "echo", ...(!bare && { sessionId: session, metadata: { idempotencyKey: `${session}/s${i}/1` } }) });
  };
  const ended = async (id: string): Promise<void> => {
    for await (const _ of adapter.streamTaskUpdates(id));
  };

  const steps = (chained: boolean): WorkflowDefinition =>
    checkWorkflow({ name: chained ? "chain" : "fan-out", steps: Array.from({ length: N }, (_, i): StepDraft => ({ id: `s${i}`, agent: "echo", input: `${i}`, ...(chained && i > 0 && { dependsOn: [`s${i - 1}`] }) })) });
  const runWorkflow = async (def: WorkflowDefinition): Promise<number> => {
    const start = performance.now();
    const done = await coordinator.wait((await coordinator.start(def)).id);
    const ms = performance.now() - start;
    if (done.status !== "completed") throw new Error(`workflow ${def.name} ended ${done.status}: ${done.error}`);
    while (!endsWritten.delete(done.id)) await new Promise<void>((resolve) => (endWritten = resolve));
    return ms;
  };
  const directChain = async (bare = false): Promise<number> => {
    const request = requests(bare);
    const start = performance.now();
    for (let i = 0; i < N; i++) await ended((await adapter.submitTask(request(i))).id);
    return performance.now() - start;
  };
  const directFan = async (bare = false): Promise<number> => {
    const request = requests(bare);
    const start = performance.now();
    const tasks = await Promise.all(Array.from({ length: N }, (_, i) => adapter.submitTask(request(i))));
    await Promise.all(tasks.map((t) => ended(t.id)));
    return performance.now() - start;
  };

  try {
    const settled = async (ms: number): Promise<number> => {
      await core.engine.idle();
      return ms;
    };
    // Warm-up, the same for all four: V8 compiles the hot paths of both (and tiers up Automerge's WebAssembly) in
    // background threads for the first few dozen workflows, which on two cores would otherwise be counted.
    for (let r = 0; r < WARM_UP; r++) for (const run of [() => runWorkflow(steps(true)), () => directChain(), () => directChain(true), () => runWorkflow(steps(false)), () => directFan(), () => directFan(true)]) await settled(await run());
    const times = { chain: [] as number[], chainDirect: [] as number[], chainBare: [] as number[], fan: [] as number[], fanDirect: [] as number[], fanBare: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      const pair = async (workflow: () => Promise<number>, direct: () => Promise<number>): Promise<[number, number]> => {
        if (r % 2 === 0) return [await settled(await workflow()), await settled(await direct())];
        const d = await settled(await direct());
        return [await settled(await workflow()), d];
      };
      const [chain, chainDirect] = await pair(() => runWorkflow(steps(true)), () => directChain());
      times.chainBare.push(await settled(await directChain(true)));
      const [fan, fanDirect] = await pair(() => runWorkflow(steps(false)), () => directFan());
      times.fanBare.push(await settled(await directFan(true)));
      times.chain.push(chain);
      times.chainDirect.push(chainDirect);
      times.fan.push(fan);
      times.fanDirect.push(fanDirect);
    }
    const med = (xs: number[]): number => percentile(xs, 50);
    const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
    const shape = (workflow: number[], direct: number[], bare: number[]): Record<string, number> => ({
      workflowMs: med(workflow),
      directMs: med(direct),
      ratio: ratio(med(workflow), med(direct)),
      pairedRatio: ratio(med(workflow.map((w, i) => w / direct[i]!)), 1),
      bareDirectMs: med(bare),
      ratioOverBare: ratio(med(workflow), med(bare)),
    });
    printResult("workflow", { steps: N, rounds: ROUNDS, chain: shape(times.chain, times.chainDirect, times.chainBare), fanOut: shape(times.fan, times.fanDirect, times.fanBare), target: 1.3 });
  } finally {
    await coordinator.stop();
    await core.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
