import { resolve } from "node:path";
import { Command } from "commander";
import type { AgentPublished } from "../../registry/node-registry.js";
import type { MeshAgentState } from "../../registry/published-agents.js";
import { EXIT } from "../exit-codes.js";
import { printJson, table } from "../output.js";
import { admin } from "./mesh.js";

/** `coderclaw agent publish|list`: agent definitions shared through the mesh, signed by their publisher. */
export function agentCommand(setExit: (code: number) => void): Command {
  const agent = new Command("agent").description("agents shared through the mesh: publish a team-agents.yaml, list what the mesh publishes and whether it runs here");

  agent
    .command("publish")
    .description("publish each agent a team-agents.yaml declares as <team>/<id> (needs registry:publish); an unchanged one is left as it is")
    .argument("<file>", "the team-agents.yaml")
    .option("--team <team>", "the team part of the published names", "team")
    .option("--version <version>", "the version (default: the next patch of the newest published, 1.0.0 for a first)")
    .option("--json", "print JSON")
    .action(async (file: string, opts: { team: string; version?: string; json?: boolean }, cmd: Command) => {
      const done = (await admin(cmd, "agent.publish", { file: resolve(file), team: opts.team, ...(opts.version !== undefined && { version: opts.version }) }, false)) as AgentPublished[];
      if (opts.json) printJson(done);
      else for (const a of done) process.stdout.write(a.changed ? `published ${a.name}@${a.version} (statement ${a.id.slice(0, 16)})\n` : `${a.name}@${a.version} is published already with this definition\n`);
      setExit(EXIT.ok);
    });

  agent
    .command("list")
    .description("agents published to the mesh, with whether each runs on this node and on each member, and why not")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = (await admin(cmd, "agent.list", {}, false)) as MeshAgentState[];
      if (opts.json) printJson(list);
      else {
        const t = table(["agent", "published as", "publisher", "here", "members"]);
        for (const a of list) {
          const runs = a.members.filter((m) => m.runs).length;
          t.push([a.id, `${a.name}@${a.version}`, a.publisher.slice(0, 16), a.available ? "runs here" : `no: ${a.reason ?? "unavailable"}`, `${runs} of ${a.members.length} run it${runs < a.members.length ? " (--json: why not)" : ""}`]);
        }
        process.stdout.write(list.length === 0 ? "no agents published in this mesh\n" : `${t.toString()}\n`);
      }
      setExit(EXIT.ok);
    });
  return agent;
}
