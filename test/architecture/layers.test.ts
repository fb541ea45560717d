import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Dependencies flow left to right only (docs/architecture.md, Layers). */
const LAYERS = ["identity", "src", "protocols", "node"] as const;

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

describe("layering", () => {
  it("no folder imports from a folder to its right (identity -> src -> protocols -> node)", () => {
    const violations: string[] = [];
    for (const [rank, layer] of LAYERS.entries()) {
      for (const file of files(join(root, layer))) {
        const text = readFileSync(file, "utf8");
        for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
          const target = relative(root, resolve(dirname(file), m[1]!)).split("/")[0]!;
          const targetRank = LAYERS.indexOf(target as (typeof LAYERS)[number]);
          if (targetRank > rank) violations.push(`${relative(root, file)} imports ${m[1]}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
