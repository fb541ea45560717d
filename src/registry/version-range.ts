import { InvalidInputError } from "../contract/errors.js";

/** A published version: `major.minor.patch`, each 0..999999 without leading zeros. */
export const VERSION_PATTERN = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/;

/** A version as its three numbers. */
export type Version = readonly [number, number, number];

/** The version `text`, or undefined when it is not `x.y.z`. */
export function parseVersion(text: string): Version | undefined {
  const m = VERSION_PATTERN.exec(text);
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Negative, zero or positive as `a` is older than, the same as or newer than `b`. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (x === undefined || y === undefined) throw new InvalidInputError(`not a version: ${JSON.stringify((x === undefined ? a : b).slice(0, 40))}`, "version");
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** Which versions a request accepts: `1.2.3` exactly, `^1.2.3` (same major; same minor under 1.0), `~1.2.3` (same minor), or `*`. */
export interface VersionRange {
  readonly text: string;
  accepts(version: string): boolean;
}

/** Parses a range as {@link VersionRange} describes; anything else is refused naming `field`. */
export function parseRange(text: string, field = "range"): VersionRange {
  if (text === "*" || text === "") return { text: "*", accepts: (v) => parseVersion(v) !== undefined };
  const op = text[0] === "^" || text[0] === "~" ? text[0] : "";
  const base = parseVersion(text.slice(op.length));
  if (base === undefined) throw new InvalidInputError(`${JSON.stringify(text.slice(0, 40))} is not a version range: use 1.2.3, ^1.2.3, ~1.2.3 or *`, field);
  const [major, minor] = base;
  const within = (v: Version): boolean => {
    if (op === "") return v[0] === base[0] && v[1] === base[1] && v[2] === base[2];
    if (op === "~" || (op === "^" && major === 0)) return v[0] === major && v[1] === minor;
    return v[0] === major;
  };
  return {
    text,
    accepts: (version) => {
      const v = parseVersion(version);
      return v !== undefined && within(v) && compareVersions(version, text.slice(op.length)) >= 0;
    },
  };
}
