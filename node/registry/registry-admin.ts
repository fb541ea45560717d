import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { NodeRegistry } from "./node-registry.js";
import type { MeshAgentState } from "./published-agents.js";

/** Administrative calls on a node's registry (skills and published agents), served over the control socket. */
export const REGISTRY_METHODS = ["skill.publish", "skill.install", "skill.yank", "skill.update", "skill.list", "skill.remove", "agent.publish", "agent.list"] as const;
export type RegistryMethod = (typeof REGISTRY_METHODS)[number];

// Names, versions and ranges are judged by the registry itself, which audits a refusal; here only their size and type.
const name = z.string().min(1).max(200);
const schemas = {
  // The folder is read by the node, on this machine: the control socket is only open to who can read the data directory.
  "skill.publish": z.strictObject({ dir: z.string().min(1).max(4096), name, version: z.string().min(1).max(64) }),
  "skill.install": z.strictObject({ name, range: z.string().max(64).optional(), downgrade: z.boolean().optional(), from: z.string().min(1).max(128).optional() }),
  "skill.yank": z.strictObject({ name, version: z.string().min(1).max(64), reason: z.string().max(500) }),
  "skill.update": z.strictObject({ names: z.array(name).max(10_000).optional() }).optional(),
  "skill.list": z.strictObject({}).optional(),
  "skill.remove": z.strictObject({ name }),
  // The file is read by the node, on this machine, as a skill folder is.
  "agent.publish": z.strictObject({ file: z.string().min(1).max(4096), team: z.string().min(1).max(64), version: z.string().min(1).max(64).optional() }),
  "agent.list": z.strictObject({}).optional(),
} satisfies Record<RegistryMethod, z.ZodType>;

/** True when `method` is one of {@link REGISTRY_METHODS}. */
export function isRegistryMethod(method: string): method is RegistryMethod {
  return (REGISTRY_METHODS as readonly string[]).includes(method);
}

/** Run one registry call; parameters are validated here. */
export async function runRegistryAdmin(registry: NodeRegistry, listAgents: () => Promise<MeshAgentState[]>, method: RegistryMethod, raw: unknown): Promise<unknown> {
  switch (method) {
    case "skill.publish": {
      const { dir, name, version } = parseInput(schemas[method], raw);
      return registry.publishSkill(dir, name, version);
    }
    case "skill.install": {
      const { name, range, downgrade, from } = parseInput(schemas[method], raw);
      return registry.installSkill(name, range, { ...(downgrade !== undefined && { downgrade }), ...(from !== undefined && { from }) });
    }
    case "skill.yank": {
      const { name, version, reason } = parseInput(schemas[method], raw);
      return registry.yankSkill(name, version, reason);
    }
    case "skill.update":
      return registry.updateSkills(parseInput(schemas[method], raw)?.names);
    case "skill.list":
      parseInput(schemas[method], raw);
      return registry.listSkills();
    case "skill.remove":
      return registry.removeSkill(parseInput(schemas[method], raw).name);
    case "agent.publish": {
      const { file, team, version } = parseInput(schemas[method], raw);
      return registry.publishAgents(file, team, version);
    }
    case "agent.list":
      parseInput(schemas[method], raw);
      return listAgents();
  }
}
