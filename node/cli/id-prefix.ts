import { CoderClawError } from "../../src/contract/errors.js";

/** Shortest prefix accepted for an id: shorter ones match too much to mean anything. */
export const MIN_ID_PREFIX = 4;

/** Most candidates named when a prefix is ambiguous. */
const MAX_LISTED = 10;

/**
 * The one id among `candidates` that `text` names: itself, or a unique prefix of
 * it (as git and docker take them). A full id that is not among the candidates is
 * returned as it is, for the runtime to judge; a prefix shorter than
 * {@link MIN_ID_PREFIX}, one that matches nothing, or one that matches several
 * (listed) is refused.
 */
export function resolveIdPrefix(what: string, text: string, candidates: Iterable<string>, isFullId: (text: string) => boolean): string {
  const all = [...new Set(candidates)];
  if (all.includes(text) || isFullId(text)) return text;
  if (text.length < MIN_ID_PREFIX) throw new CoderClawError("INVALID_INPUT", `${what} ${JSON.stringify(text)}: a prefix needs at least ${MIN_ID_PREFIX} characters`, { field: "id" });
  const matches = all.filter((id) => id.startsWith(text));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new CoderClawError("NOT_FOUND", `no ${what} starts with ${JSON.stringify(text)}`);
  const listed = matches.slice(0, MAX_LISTED).join("\n  ");
  throw new CoderClawError("INVALID_INPUT", `${what} prefix ${JSON.stringify(text)} is ambiguous; it matches ${matches.length}:\n  ${listed}${matches.length > MAX_LISTED ? "\n  ..." : ""}`, { field: "id" });
}
