import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StaticAgentRegistry } from "../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../node/create-node.js";
import type { HostRequest } from "./mesh-host.js";
import { percentile } from "./report.js";
import { socketBytes } from "./socket-bytes.js";
import { messageTally, startMessageTally } from "./message-tally.js";
import { builtBenchScript } from "./built-script.js";

/** A child process hosting some of the mesh's nodes. */
interface Host {
  child: ChildProcess;
  ask<T>(m: HostRequest): Promise<T>;
}

async function startHost(count: number): Promise<{ host: Host; peers: string[] }> {
  const child = fork(builtBenchScript("mesh-host.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: process.env.CC_HOST_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.CC_HOST_PROF}`] : [] });
  // One request at a time per host: replies come back in order.
  let chain: Promise<unknown> = Promise.resolve();
  const ask = <T>(m: HostRequest): Promise<T> => {
    const next = chain.then(async () => {
      const answer = once(child, "message");
      child.send(m);
      const [reply] = (await answer) as [T & { error?: string }];
      if (reply.error !== undefined) throw new Error(`host ${child.pid}: ${reply.error}`);
      return reply;
    });
    chain = next.catch(() => undefined);
    return next;
  };
  await once(child, "message");
  const { peers } = await ask<{ peers: string[] }>({ start: count });
  return { host: { child, ask }, peers };
}

async function stopHost(host: Host): Promise<void> {
  const exited = once(host.child, "exit");
  host.child.send({ stop: true } satisfies HostRequest);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000).unref())]);
  host.child.kill("SIGKILL");
}

function membersKnown(node: CoderClawNode): number {
  return node.membership.devices().filter((d) => node.membership.isMember(d.deviceId)).length;
}

/**
 * A mesh of `n` nodes formed the way people form one: a founder in this
 * process, with no agents of its own, invites every other node in turn; they
 * run in `processes` child processes (as many as this machine fits, the rest
 * of the nodes sharing them). Then the founder submits `routed` echo tasks,
 * route `auto`, one after another: each must be placed on a member from what
 * the founder knows. Figures: each join's time (p50, max) and how many
 * were tried again after failing, the time until every
 * node knows all n members, each routed task's time from submit to completed
 * (p50, p99), the members that ran them, and CPU of every process while
 * forming; then, after `settleMs`, the mesh idle for `idleMs`: socket bytes
 * and CPU per node per minute, every process counted, in up to `idleWindows`
 * windows one after another (the first and the last reported). With
 * `CC_HOST_PROF=<dir>` each host process writes its CPU profile there; with
 * `CC_TALLY=1` what each part sent, by protocol and message kind, goes to stderr.
 */
export async function formCost(n: number, processes: number, routed: number, settleMs: number, idleMs: number, idleWindows = 1): Promise<Record<string, number>> {
  if (process.env.CC_TALLY === "1") startMessageTally();
  const dir = mkdtempSync(join(tmpdir(), "cc-bench-form-"));
  const founder = await createNode({ dataDir: dir, mdns: false, agents: new StaticAgentRegistry([]), inboundConnectionThreshold: 1000 });
  const hosts: Host[] = [];
  try {
    await founder.createMesh("bench form");
    const others = n - 1;
    const slots: Array<{ host: Host; index: number }> = [];
    for (let p = 0; p < processes; p++) {
      const count = Math.floor(others / processes) + (p < others % processes ? 1 : 0);
      if (count === 0) continue;
      const { host, peers } = await startHost(count);
      hosts.push(host);
      peers.forEach((_, index) => slots.push({ host, index }));
    }
    /** CPU time (ms) and socket bytes of every process so far. */
    let founderOpened = 0;
    founder.libp2p.addEventListener("connection:open", () => void founderOpened++);
    type Usage = { cpuMs: number; bytes: number; opened: number; tally: Record<string, number> };
    const usage = async (): Promise<Usage> => {
      const c = process.cpuUsage();
      const children = await Promise.all(hosts.map((h) => h.ask<Usage>({ cpu: true })));
      const tally: Record<string, number> = {};
      for (const part of [messageTally(), ...children.map((r) => r.tally)]) for (const [k, v] of Object.entries(part)) tally[k] = (tally[k] ?? 0) + v;
      return {
        cpuMs: (c.user + c.system) / 1000 + children.reduce((s, r) => s + r.cpuMs, 0),
        bytes: socketBytes() + children.reduce((s, r) => s + r.bytes, 0),
        opened: founderOpened + children.reduce((s, r) => s + r.opened, 0),
        tally,
      };
    };
    /** With `CC_TALLY=1`: what the mesh sent between two usages, by protocol and message kind, in bytes per node per minute, largest first. */
    const tallied = (from: Usage, to: Usage, minutes: number): Record<string, number> =>
      Object.fromEntries(
        Object.entries(to.tally)
          .map(([k, v]): [string, number] => [k, Math.round((v - (from.tally[k] ?? 0)) / n / minutes)])
          .filter(([, v]) => v > 0)
          .sort((x, y) => y[1] - x[1]),
      );
    const start = await usage();
    const cpu0 = start.cpuMs;
    const t0 = performance.now();
    const joins: number[] = [];
    // A join that fails (a handshake timing out on this loaded machine) is tried again with a new invite, as a
    // person would; how often that happened is a figure too.
    let joinRetries = 0;
    for (const { host, index } of slots) {
      const j0 = performance.now();
      for (let attempt = 0; ; attempt++) {
        try {
          const { invite } = await founder.pairing.invite("trusted", 120_000);
          await host.ask({ join: { index, invite } });
          break;
        } catch (error) {
          if (attempt >= 3) throw error;
          joinRetries++;
        }
      }
      joins.push(performance.now() - j0);
    }
    const everyoneKnowsAll = async (): Promise<boolean> => {
      if (membersKnown(founder) < n) return false;
      const counts = await Promise.all(hosts.map((h) => h.ask<{ members: number[] }>({ members: true })));
      return counts.every((c) => c.members.every((m) => m === n));
    };
    const deadline = Date.now() + 600_000;
    while (!(await everyoneKnowsAll())) {
      if (Date.now() > deadline) throw new Error(`a mesh of ${n} did not form within 10 minutes`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const formedMs = performance.now() - t0;
    const formed = await usage();
    const formCpuMs = formed.cpuMs - cpu0;
    if (process.env.CC_TALLY === "1") console.error(JSON.stringify({ n, part: "forming", bytesPerNodePerMinute: tallied(start, formed, formedMs / 60_000) }));
    const latencies: number[] = [];
    const executors = new Set<string>();
    for (let i = 0; i < routed; i++) {
      const r0 = performance.now();
      const task = await founder.adapter.submitTask({ description: "bench form", input: `x${i}`, agentId: "echo" }, { route: "auto" });
      for await (const u of founder.adapter.streamTaskUpdates(task.id)) if (u.status === "completed" || u.status === "failed" || u.status === "cancelled") break;
      const done = await founder.adapter.getTaskState(task.id);
      if (done?.status !== "completed") throw new Error(`routed task ${task.id} ended ${done?.status}: ${done?.error ?? ""}`);
      latencies.push(performance.now() - r0);
      if (done.executorId !== undefined) executors.add(done.executorId);
    }
    await new Promise((r) => setTimeout(r, settleMs));
    // Idle windows one after another, until one costs no more than 1.2 times the one before (or `idleWindows` were
    // measured): whether a large mesh is still converging after forming, or costs this much for good, shows in the trend.
    const windows: Array<{ bytes: number; cpuPercent: number; opened: number; afterFormedMs: number }> = [];
    for (let w = 0; w < idleWindows; w++) {
      const idle0 = await usage();
      const i0 = performance.now();
      await new Promise((r) => setTimeout(r, idleMs));
      const idle1 = await usage();
      const minutes = (performance.now() - i0) / 60_000;
      if (process.env.CC_TALLY === "1") console.error(JSON.stringify({ n, part: `idle window ${w + 1}`, afterFormedMs: Math.round(i0 - t0 - formedMs), bytesPerNodePerMinute: tallied(idle0, idle1, minutes) }));
      windows.push({
        bytes: Math.round((idle1.bytes - idle0.bytes) / n / minutes),
        cpuPercent: Math.round(((idle1.cpuMs - idle0.cpuMs) / (minutes * 60_000) / n) * 100 * 1000) / 1000,
        opened: Math.round(((idle1.opened - idle0.opened) / n / minutes) * 10) / 10,
        afterFormedMs: Math.round(i0 - t0 - formedMs),
      });
      const [before, now] = windows.slice(-2);
      if (windows.length > 1 && now!.bytes <= before!.bytes * 1.2) break;
    }
    const [first, last] = [windows[0]!, windows.at(-1)!];
    return {
      n,
      processes: hosts.length + 1,
      joinP50Ms: percentile(joins, 50),
      joinMaxMs: percentile(joins, 100),
      joinRetries,
      formedMs: Math.round(formedMs),
      formCpuMsPerNode: Math.round(formCpuMs / n),
      routedP50Ms: percentile(latencies, 50),
      routedP99Ms: percentile(latencies, 99),
      routedExecutors: executors.size,
      idleBytesPerNodePerMinute: first.bytes,
      idleCpuPercentOfACorePerNode: first.cpuPercent,
      idleWindows: windows.length,
      idleLastStartsAfterFormedMs: last.afterFormedMs,
      idleLastBytesPerNodePerMinute: last.bytes,
      idleLastCpuPercentOfACorePerNode: last.cpuPercent,
      idleConnectionsOpenedPerNodePerMinute: first.opened,
      idleLastConnectionsOpenedPerNodePerMinute: last.opened,
    };
  } finally {
    await Promise.all(hosts.map(stopHost));
    await founder.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
