import { resolve } from "node:path";
import ms from "ms";
import { InvalidInputError } from "../../src/contract/errors.js";
import { parseRemoteStep, parseRequirements } from "../../src/contract/requirements.js";
import { parseSubmitOptions } from "../../src/contract/submit-options.js";
import type { SubmitOptions } from "../../src/contract/types.js";

/** What `task submit` takes about where and when a task runs, as commander hands it over. */
export interface SubmitFlags {
  route: string;
  priority?: string;
  requires?: string;
  deadline?: string;
  waitForPeer: boolean;
  /** `--repo` alone is the current directory. */
  repo?: string | boolean;
  artifacts?: string[];
  commits?: boolean;
}

/**
 * `--deadline`: a duration from now (`90s`, `30m`, `2h`, `1d`) or a date
 * (`2026-12-05T09:00:00Z`); anything else is refused saying which forms work.
 */
export function parseDeadline(text: string, now = Date.now()): Date {
  const span = ms(text as ms.StringValue);
  if (typeof span === "number" && Number.isFinite(span) && span > 0) return new Date(now + span);
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isFinite(at)) return new Date(at);
  throw new InvalidInputError(`--deadline: ${JSON.stringify(text)} is neither a duration (90s, 30m, 2h, 1d) nor a date (2026-12-05T09:00:00Z)`, "deadline");
}

/** The submit options the flags ask for, checked as every edge checks them; `--route remote:auto[gpu]` is the upstream step form. */
export function submitOptionsFromFlags(flags: SubmitFlags): SubmitOptions {
  const step = flags.route.startsWith("remote:") ? parseRemoteStep(flags.route) : { route: flags.route };
  const requires = flags.requires === undefined ? step.requires : { ...step.requires, ...parseRequirements(flags.requires) };
  let priority: number | undefined;
  if (flags.priority !== undefined) {
    priority = Number(flags.priority);
    if (flags.priority.trim() === "" || !Number.isInteger(priority)) throw new InvalidInputError(`--priority: ${JSON.stringify(flags.priority)} is not a whole number`, "priority");
  }
  return parseSubmitOptions({
    route: step.route,
    ...(priority !== undefined && { priority }),
    ...(requires !== undefined && { requires }),
    ...(flags.deadline !== undefined && { deadline: parseDeadline(flags.deadline) }),
    ...(!flags.waitForPeer && { waitForPeer: false }),
    ...(flags.repo !== undefined && flags.repo !== false && { repo: resolve(flags.repo === true ? process.cwd() : flags.repo) }),
    ...(flags.artifacts !== undefined && { artifacts: flags.artifacts }),
    ...(flags.commits === true && { commits: true }),
  });
}
