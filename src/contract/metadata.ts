import { z } from "zod";

/** Deepest nesting of objects and arrays accepted in task metadata. */
export const MAX_METADATA_DEPTH = 32;
/** Largest task metadata accepted, in bytes of its JSON form. */
export const MAX_METADATA_BYTES = 64 * 1024;

/**
 * Why `value` is not JSON-like data within `maxDepth` levels of nesting and about
 * `maxBytes` of JSON, or undefined when it is. The walk keeps its own stack and stops
 * at the first bound crossed, so a value nested thousands deep costs no call stack:
 * schemas, JSON.stringify and the document store all recurse, so they must only ever
 * see values checked here first.
 */
export function jsonBoundsProblem(value: unknown, maxDepth: number, maxBytes: number): string | undefined {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  let bytes = 0;
  while (stack.length > 0) {
    const item = stack.pop()!;
    const v = item.value;
    if (v !== null && typeof v === "object") {
      if (item.depth >= maxDepth) return `must not be nested deeper than ${maxDepth} levels`;
      const entries = Array.isArray(v) ? v.map((e): [string, unknown] => ["", e]) : Object.entries(v);
      bytes += 2 + entries.length;
      for (const [key, child] of entries) {
        bytes += key === "" ? 0 : Buffer.byteLength(key, "utf8") + 3;
        stack.push({ value: child, depth: item.depth + 1 });
      }
    } else if (typeof v === "string") {
      bytes += Buffer.byteLength(v, "utf8") + 2;
    } else {
      bytes += String(v).length;
    }
    if (bytes > maxBytes) return `must serialise to at most ${maxBytes} bytes`;
  }
  return undefined;
}

/**
 * Task metadata as every edge accepts it (HTTP, control socket, mesh task protocol,
 * engine): a JSON object bounded in depth and size before any recursive validation.
 */
export const MetadataSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    const problem = jsonBoundsProblem(value, MAX_METADATA_DEPTH, MAX_METADATA_BYTES);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem, input: value });
  })
  .pipe(z.record(z.string(), z.unknown()));
