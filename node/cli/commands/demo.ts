import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import type { TaskState } from "../../../src/contract/types.js";
import { EXIT } from "../exit-codes.js";
import { startNodeProcess, type NodeProcess } from "../node-process.js";

/** The agent only the third node has: a real command agent that streams a line per input line. */
const DEMO_AGENT_YAML = `agents:
  - id: line-counter
    name: Line counter
    description: Numbers the lines of its input, slowly, to show live progress across the mesh
    capabilities: [demo]
    command: [sh, -c, 'n=0; while IFS= read -r line; do n=$((n+1)); echo "line $n: $line"; sleep 0.3; done; echo "$n lines counted on $(hostname)"']
    input: stdin
    timeout: 1m
`;

interface DemoNode {
  name: string;
  home: string;
  proc?: NodeProcess;
}

const say = (text: string): void => void process.stdout.write(`${text}\n`);
const step = (n: number, text: string): void => say(`\n[${n}] ${text}`);

const short = (id: string | undefined): string => (id ? `${id.slice(0, 12)}…${id.slice(-6)}` : "?");

async function eventually<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const fingerprint = (tasks: TaskState[]): string =>
  tasks
    .map((t) => `${t.id}:${t.status}:${t.executorId ?? ""}`)
    .sort()
    .join("\n");

/** `coderclaw demo`: three nodes as separate processes on 127.0.0.1, end to end. */
export function demoCommand(setExit: (code: number) => void): Command {
  return new Command("demo")
    .description("start three nodes on 127.0.0.1, pair them, route a task to the only node that can run it, kill and restart a node, and watch the mesh converge")
    .option("--keep", "keep the temporary data directories")
    .action(async (opts: { keep?: boolean }) => {
      const root = mkdtempSync(join(tmpdir(), "coderclaw-demo-"));
      const nodes: DemoNode[] = ["alpha", "beta", "gamma"].map((name) => ({ name, home: join(root, name) }));
      const [alpha, beta, gamma] = nodes as [DemoNode, DemoNode, DemoNode];
      try {
        for (const n of nodes) mkdirSync(n.home, { recursive: true });
        mkdirSync(join(gamma.home, ".coderClaw"), { recursive: true });
        writeFileSync(join(gamma.home, ".coderClaw", "runtime.yaml"), DEMO_AGENT_YAML);

        step(1, "starting three nodes as separate processes on 127.0.0.1");
        await Promise.all(nodes.map(async (n) => (n.proc = await startNodeProcess(n.home))));
        const [a, b, g] = [alpha.proc!, beta.proc!, gamma.proc!];
        for (const n of nodes) say(`    ${n.name.padEnd(6)} ${short(n.proc!.deviceId)}  ${n.proc!.addr}`);
        say("    gamma alone has the agent 'line-counter' (a command agent from its .coderClaw/runtime.yaml)");

        step(2, "alpha founds a mesh; beta and gamma join with one-time invites");
        const created = (await a.client.admin("mesh.create", { name: "demo mesh" })) as { meshId: string };
        say(`    mesh ${created.meshId}`);
        for (const joiner of [beta, gamma]) {
          const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 600_000 })) as { invite: string };
          const joined = (await joiner.proc!.client.admin("mesh.join", { invite })) as { comparisonCode: string; level: string };
          say(`    ${joiner.name} joined as ${joined.level} (comparison code ${joined.comparisonCode})`);
        }
        // Beta learns of gamma's certificate by replication from alpha; its gater admits gamma from then on.
        await eventually("beta knows gamma", 15_000, async () => {
          const devices = (await b.client.admin("devices.list")) as Array<{ deviceId: string; level: string }>;
          return devices.some((d) => d.deviceId === g.deviceId && d.level !== "untrusted") ? true : undefined;
        });
        await b.client.admin("node.dial", { addr: g.addr });
        say("    beta also dials gamma directly: a full mesh of three");

        step(3, "beta submits a task for 'line-counter': beta cannot run it, so the mesh routes it");
        const task = await b.client.submitTask({ description: "count lines", input: "alpha\nbeta\ngamma\ndelta\nepsilon\n", agentId: "line-counter" });
        // Kept by the node it was submitted to, run as an attempt on the node that has the agent.
        const runsOn = task.placement?.runsOn ?? task.executorId;
        const executor = nodes.find((n) => n.proc?.deviceId === runsOn);
        say(`    task ${task.id} accepted by ${executor?.name ?? short(runsOn)}`);
        for await (const u of b.client.streamTaskUpdates(task.id)) {
          say(`    #${String(u.seq).padEnd(3)} ${u.status.padEnd(9)} ${(u.message ?? "").trimEnd().replace(/\n/g, " | ")}`);
        }
        const done = await b.client.getTaskState(task.id);
        say(`    result on beta: ${done?.status}: ${(done?.output ?? done?.error ?? "").trim().split("\n").at(-1)}`);

        step(4, "beta is killed (SIGKILL) while the others keep working");
        await b.kill();
        const more: string[] = [];
        for (let i = 1; i <= 3; i++) more.push((await a.client.submitTask({ description: `while beta is down ${i}`, input: `work ${i}`, agentId: "echo" })).id);
        more.push((await a.client.submitTask({ description: "one more for gamma", input: "x\ny", agentId: "line-counter" })).id);
        for (const id of more) for await (const _ of a.client.streamTaskUpdates(id));
        say(`    alpha ran 3 tasks and routed 1 to gamma while beta was down`);

        step(5, "beta restarts from its data directory and rejoins through alpha");
        const b2 = (beta.proc = await startNodeProcess(beta.home, ["--bootstrap", a.addr]));
        // Every node's view is read again each time: alpha, too, may still be missing what beta wrote just before it was killed.
        let last = "";
        const count = await eventually("beta converges", 30_000, async () => {
          const [onAlpha, onBeta, onGamma] = await Promise.all([a, b2, g].map(async (n) => fingerprint(await n.client.listTasks({ limit: 1000 }))));
          last = `alpha:\n${onAlpha}\nbeta:\n${onBeta}\ngamma:\n${onGamma}`;
          return onBeta === onAlpha && onGamma === onAlpha ? onAlpha!.split("\n").length : undefined;
        }).catch((err: unknown) => {
          process.stderr.write(`${last}\n`);
          throw err;
        });
        say(`    converged: alpha, beta and gamma hold the same ${count} tasks with identical states`);
        say("\ndemo complete");
        setExit(EXIT.ok);
      } finally {
        await Promise.all(nodes.map((n) => n.proc?.stop().catch(() => undefined)));
        if (opts.keep) say(`data kept in ${root}`);
        else rmSync(root, { recursive: true, force: true });
      }
    });
}
