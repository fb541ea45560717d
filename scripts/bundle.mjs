// Bundles, in place over tsc's output, the programs that start as processes: the command line, the
// benchmarks and the processes they fork, and the reach tests' node host. Loading a node's modules one by
// one costs about 2 s of CPU here, bundled about 1 s: the suite starts hundreds of these processes.
// Their shared chunks go to dist/node/cli/, where the command line's always were: a module that finds
// files relative to itself must work from there as well as from its own place.
import { readdirSync, rmSync, chmodSync } from "node:fs";
import { dirname } from "node:path";
import { build } from "esbuild";

const CHUNKS = "dist/node/cli";
for (const file of readdirSync(CHUNKS)) if (file.startsWith("chunk-")) rmSync(`${CHUNKS}/${file}`);

const BENCHES = ["engine", "exec", "identity", "security", "mesh", "http", "schedule", "workspace", "scale", "workflow", "reach", "registry"];
const FORKED = ["mesh-host", "routed-executor", "workspace-executor", "reach/node-host"];

// Zod's `z` namespace carries every locale's messages (`z.locales`, `z.core.locales`), half of the 740 kB chunk that each command
// loads, compiled anew by each process: 30 ms of a 290 ms `task list`. Nothing here sets a locale (`z.config`),
// and English, the default, zod imports on its own; these hold English alone.
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[/\\]node_modules[/\\]zod[/\\]v4[/\\](classic|core)[/\\]/.test(args.importer) ? { path: "zod-locales", namespace: "zod-english-only", pluginData: dirname(args.importer) } : undefined,
    );
    build.onLoad({ filter: /^zod-locales$/, namespace: "zod-english-only" }, (args) => ({
      contents: 'export { default as en } from "../locales/en.js";',
      resolveDir: args.pluginData,
    }));
  },
};

await build({
  entryPoints: ["dist/node/cli/main.js", ...[...BENCHES, ...FORKED].map((name) => `dist/bench/${name}.js`)],
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outbase: "dist",
  outdir: "dist",
  allowOverwrite: true,
  entryNames: "[dir]/[name]",
  chunkNames: "node/cli/chunk-[hash]",
  // Native and WebAssembly packages load files of their own.
  external: ["classic-level", "@automerge/automerge", "@achingbrain/ssdp"],
  plugins: [zodEnglishOnly],
  logLevel: "warning",
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
});
chmodSync("dist/node/cli/main.js", 0o755);
