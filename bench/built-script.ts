import { join } from "node:path";
import { bundledDir } from "../src/util/bundled-dir.js";

/**
 * The built program `name` of dist/bench/ (`mesh-host.js`, `reach/node-host.js`), to start as a process.
 * Found from the package root, not from this module: a benchmark's code runs from a bundle's chunk in
 * dist/node/cli/ as well as from dist/bench/, and tests import it from the TypeScript source.
 */
export function builtBenchScript(name: string): string {
  const dist = bundledDir("dist");
  if (dist === undefined) throw new Error(`no dist/ beside package.json above this module: run \`npm run build\` before starting dist/bench/${name}`);
  return join(dist, "bench", name);
}
