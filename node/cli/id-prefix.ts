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

/**
 * The one device `text` names: a full device id, a device's name (any case), or a
 * unique prefix of a device id or of its fingerprint (dashes optional). A text that
 * fits several devices, e.g. a name that is also another device's id prefix, is
 * refused listing the candidates; one that names no device of the mesh is refused
 * as such.
 */
export function resolveDevice(text: string, devices: ReadonlyArray<{ deviceId: string; name?: string; fingerprint?: string }>, isFullId: (text: string) => boolean): string {
  if (isFullId(text)) return text;
  const wanted = text.toLowerCase();
  const byName = devices.filter((d) => d.name?.toLowerCase() === wanted);
  const byPrefix = text.length >= MIN_ID_PREFIX ? devices.filter((d) => d.deviceId.startsWith(text)) : [];
  const bare = (fingerprint: string): string => fingerprint.replaceAll("-", "").toLowerCase();
  const byFingerprint = bare(text).length >= MIN_ID_PREFIX ? devices.filter((d) => d.fingerprint !== undefined && bare(d.fingerprint).startsWith(bare(text))) : [];
  const matches = [...new Map([...byName, ...byPrefix, ...byFingerprint].map((d) => [d.deviceId, d])).values()];
  if (matches.length === 1) return matches[0]!.deviceId;
  if (matches.length === 0) {
    const hint = text.length < MIN_ID_PREFIX ? ` (an id prefix needs at least ${MIN_ID_PREFIX} characters)` : "";
    throw new CoderClawError("NOT_FOUND", `no device of this mesh is named ${JSON.stringify(text)} or has an id or fingerprint starting with it${hint}; see coderclaw devices list`);
  }
  const listed = matches.slice(0, MAX_LISTED).map((d) => `${d.deviceId}${d.name === undefined ? "" : ` (${d.name})`}`).join("\n  ");
  throw new CoderClawError("INVALID_INPUT", `device ${JSON.stringify(text)} is ambiguous; it names ${matches.length} devices:\n  ${listed}${matches.length > MAX_LISTED ? "\n  ..." : ""}`, { field: "id" });
}
