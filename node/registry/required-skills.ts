import { parseRange } from "../../src/registry/version-range.js";
import type { AuditBody } from "../../src/security/index.js";
import type { NodeRegistry } from "./node-registry.js";

/** What keeping required skills installed needs of the node. */
export interface RequiredSkillsDeps {
  registry: Pick<NodeRegistry, "missingRequired" | "installSkill" | "removeDenied" | "catalogue">;
  selfId: string;
  record: (body: AuditBody) => Promise<unknown>;
  onError?: (error: Error) => void;
}

/** Keeps the installed skills to the organization policy; {@link check} runs whenever something that could change it happened. */
export interface RequiredSkills {
  /** Install every required registry skill missing here; resolves once this round is done. */
  check(): Promise<void>;
  stop(): void;
}

/**
 * Installed skills the organization policy denies (by registry name or
 * SKILL.md name) are removed, each audited, whenever the policy arrives
 * after the install. The organization policy's `requiredSkills` that name a registry package
 * (`team/name`) are installed on every member, newest published version,
 * as soon as the policy, the publication and a member holding the tree are
 * all in reach. A member that cannot says why in its audit log
 * (`registry.required`, once per distinct reason) and in `skill list`.
 */
export function createRequiredSkills(deps: RequiredSkillsDeps): RequiredSkills {
  const reported = new Map<string, string>();
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const report = async (name: string, reason: string): Promise<void> => {
    if (reported.get(name) === reason) return;
    reported.set(name, reason);
    await deps.record({ action: "registry.required", userId: deps.selfId, deviceId: deps.selfId, resource: name, result: "denied", reason: `cannot install ${name}, which the organization requires: ${reason}` });
  };

  const round = async (): Promise<void> => {
    await deps.registry.removeDenied();
    for (const name of await deps.registry.missingRequired()) {
      if (stopped) return;
      const found = deps.registry.catalogue.resolve("skill", name, parseRange("*"));
      if ("missing" in found) {
        await report(name, found.missing);
        continue;
      }
      try {
        await deps.registry.installSkill(name);
        reported.delete(name);
      } catch (err) {
        await report(name, (err as Error).message);
      }
    }
  };

  /** One round at a time; a call during a round asks for one more after it. */
  const check = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await round().catch((err: Error) => deps.onError?.(err));
      } while (again && !stopped);
      running = undefined;
    })();
    return running;
  };

  return {
    check,
    stop: () => {
      stopped = true;
    },
  };
}
