import { Command } from "commander";
import ms from "ms";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import type { AccessOptions } from "../runtime-access.js";
import { EXIT } from "../exit-codes.js";
import { agentTable, printJson, skillTable, table } from "../output.js";
import type { RuntimeStatus, TransportAdapter } from "../../../src/contract/types.js";
import type { PeerInfo } from "../../mesh/peer-list.js";
import type { PortMappingReport } from "../../libp2p/router-port-mapping.js";
import { admin, describePath, describePortMapping } from "./mesh.js";
import { fieldsOption, printFields } from "../fields.js";
import { withRuntime } from "./task.js";

/** The node, its mesh, its peers and its running tasks, as `status` shows them on one screen (like `tailscale status`). */
async function nodeScreen(cmd: Command, adapter: TransportAdapter): Promise<{ json: Record<string, unknown>; text: (s: Pick<RuntimeStatus, "healthy" | "uptime" | "version" | "activeTasks" | "totalTasks">) => string }> {
  const [id, mesh, peers, running, pending] = await Promise.all([
    admin(cmd, "node.id", {}, false) as Promise<{ deviceId: string; fingerprint: string; addrs: string[]; portMapping: PortMappingReport }>,
    admin(cmd, "mesh.status", {}, false) as Promise<{ meshId: string | null; name: string | null; devices: number; self: string }>,
    admin(cmd, "node.peers", {}, false) as Promise<PeerInfo[]>,
    adapter.listTasks({ status: "running", limit: 20 }),
    adapter.listTasks({ status: "pending", limit: 1000 }),
  ]);
  return {
    json: { node: id, mesh, peers, runningTasks: running, pendingTasks: pending.length },
    text: (s) => {
      const lines = [
        `${id.deviceId}  ${s.healthy ? "healthy" : "UNHEALTHY"}, up ${ms(s.uptime)}, v${s.version}, fingerprint ${id.fingerprint}`,
        mesh.meshId === null ? "mesh      none (coderclaw mesh create | mesh join <invite>)" : `mesh      ${mesh.name ?? ""} (${mesh.meshId}), ${mesh.devices} devices, this one ${mesh.self}`,
        `tasks     ${s.activeTasks} active, ${pending.length} waiting, ${s.totalTasks} in all`,
        ...id.addrs.map((a, i) => `${i === 0 ? "listening" : "         "} ${a}`),
        ...(id.portMapping.state === "off" ? [] : describePortMapping(id.portMapping).map((line, i) => `${i === 0 ? "port map " : "         "} ${line}`)),
      ];
      const p = table(["peer", "name", "path", "latency", "load", "free slots", "agents"]);
      for (const peer of peers) p.push([peer.peerId, peer.name ?? "", describePath(peer), peer.latencyMs === undefined ? "" : `${peer.latencyMs} ms`, peer.load ?? "", peer.freeSlots ?? "", (peer.agents ?? []).join(", ")]);
      lines.push("", peers.length === 0 ? "no peers connected" : p.toString());
      if (running.length > 0) {
        const t = table(["running", "agent", "where", "for"]);
        for (const task of running) t.push([task.id, task.agentId ?? "", task.placement?.runsOn ?? task.executorId ?? "here", task.startedAt === undefined ? "" : ms(Date.now() - task.startedAt.getTime())]);
        lines.push("", t.toString());
      }
      return lines.join("\n") + "\n";
    },
  };
}

/** `coderclaw agents`, `skills` and `status`. */
export function infoCommands(setExit: (code: number) => void): Command[] {
  const agents = new Command("agents")
    .description("list agents, with why an agent cannot run here")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const list = await adapter.listAgents();
          if (opts.fields) printFields(list, opts.fields, opts.json === true);
          else if (opts.json) printJson(list);
          else process.stdout.write(agentTable(list) + "\n");
          return EXIT.ok;
        }),
      );
    });
  const skills = new Command("skills")
    .description("list skills, with the missing requirement of disabled ones")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const list = await adapter.listSkills();
          if (opts.fields) printFields(list, opts.fields, opts.json === true);
          else if (opts.json) printJson(list);
          else process.stdout.write(list.length === 0 ? "no skills\n" : skillTable(list) + "\n");
          return EXIT.ok;
        }),
      );
    });
  const status = new Command("status")
    .description("runtime status")
    .addHelpText("after", "\nExamples:\n  coderclaw status\n  coderclaw status --json\n  coderclaw --server https://node.example:7420 --token $T status\n")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter, kind) => {
          const status = await adapter.getStatus();
          // Without a node, storage was opened by this command: its uptime and health are this process's, not a node's.
          if (kind === "storage") {
            const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
            const none = { running: false, dataDir, totalTasks: status.totalTasks, version: status.version };
            if (opts.fields) printFields([none], opts.fields, opts.json === true);
            else if (opts.json) printJson(none);
            else process.stdout.write(`no node is running on ${dataDir} (start one with \`coderclaw start\`)\n${"totalTasks".padEnd(14)} ${status.totalTasks}\n`);
            return EXIT.runtime;
          }
          const s = { running: true, ...status, reachedThrough: kind };
          // Through the node's own socket there is more to show: one screen of this node, its mesh, peers and work.
          const screen = kind === "node" ? await nodeScreen(cmd, adapter) : undefined;
          if (opts.fields) printFields([screen === undefined ? s : { ...s, ...screen.json }], opts.fields, opts.json === true);
          else if (opts.json) printJson(screen === undefined ? s : { ...s, ...screen.json });
          else if (screen !== undefined) process.stdout.write(screen.text(s));
          else process.stdout.write(Object.entries(s).map(([k, v]) => `${k.padEnd(14)} ${k === "uptime" ? ms(Number(v)) : String(v)}`).join("\n") + "\n");
          return s.healthy ? EXIT.ok : EXIT.runtime;
        }),
      );
    });
  return [agents, skills, status];
}
