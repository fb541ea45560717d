import { InvalidInputError } from "./errors.js";
import { RequirementNameSchema, RequirementsSchema } from "./submit-options.js";
import { parseInput } from "./parse-input.js";
import { parseRoute } from "./route.js";
import type { TaskRequirements } from "./types.js";

/** Longest text form read: room for the most labels and resources with long names, and no more. */
const MAX_REQUIREMENTS_TEXT = 8192;

/**
 * Requirements from their text form, as `--requires` and HTTP queries spell
 * them: comma-separated items, `gpu` a label, `cpu>=4` (or `cpu=4`) a resource
 * with the least amount needed. A repeated resource keeps the larger amount.
 * Refused as INVALID_INPUT on `requires`, naming the item.
 */
export function parseRequirements(text: string): TaskRequirements {
  if (text.length > MAX_REQUIREMENTS_TEXT) throw new InvalidInputError(`must be at most ${MAX_REQUIREMENTS_TEXT} characters`, "requires");
  const labels = new Set<string>();
  // A Map, not an object: a resource named `toString` must not meet Object.prototype.
  const resources = new Map<string, number>();
  const items = text.split(",").map((s) => s.trim());
  for (const [i, item] of items.entries()) {
    const where = `item ${i + 1} ${JSON.stringify(item.slice(0, 80))}`;
    if (item === "") throw new InvalidInputError(`${where}: empty`, "requires");
    const m = /^([^<>=\s]+)\s*(>=|=)\s*(.*)$/.exec(item);
    if (m === null && /[<>=]/.test(item)) throw new InvalidInputError(`${where}: expected name>=amount or name=amount`, "requires");
    const name = m?.[1] ?? item;
    const named = RequirementNameSchema.safeParse(name);
    if (!named.success) throw new InvalidInputError(`${where}: name ${named.error.issues[0]!.message}`, "requires");
    if (m === null) {
      labels.add(name);
      continue;
    }
    const amount = DECIMAL.test(m[3]!) ? Number(m[3]) : NaN;
    if (!Number.isFinite(amount)) throw new InvalidInputError(`${where}: amount must be a number >= 0`, "requires");
    resources.set(name, Math.max(resources.get(name) ?? 0, amount));
  }
  const out: TaskRequirements = {};
  if (labels.size > 0) out.labels = [...labels];
  if (resources.size > 0) out.resources = Object.fromEntries(resources);
  return parseInput(RequirementsSchema, out, "requires");
}

/** A plain decimal amount (`4`, `0.5`, `.5`, `1e-7` as numbers print): no sign, no hex, no `Infinity`. */
const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The text form of requirements: what {@link parseRequirements} reads back. */
export function formatRequirements(req: TaskRequirements): string {
  return [...(req.labels ?? []), ...Object.entries(req.resources ?? {}).map(([k, v]) => `${k}>=${v}`)].join(",");
}

/**
 * The upstream CoderClaw step form `remote:auto[gpu,high-memory]`,
 * `remote:<peer-id>[...]` or `remote:auto`: where to run and what it needs.
 */
export function parseRemoteStep(text: string): { route: string; requires?: TaskRequirements } {
  const m = /^remote:([^[\]\s]+)(?:\[([^\]]*)\])?$/.exec(text.trim());
  if (m === null) throw new InvalidInputError(`expected remote:<auto|peer-id>[requirement,...], got ${JSON.stringify(text.slice(0, 80))}`, "route");
  const route = parseRoute(m[1]);
  return m[2] === undefined || m[2].trim() === "" ? { route } : { route, requires: parseRequirements(m[2]) };
}
