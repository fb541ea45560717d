import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A folder shipped at this package's root (`skills`, `workflows`), found by
 * walking up from this module to the package root: the depth differs between
 * src/ under vitest and dist/ when built.
 */
export function bundledDir(name: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, name))) return join(dir, name);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}
