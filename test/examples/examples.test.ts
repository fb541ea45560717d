import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/temp-dir.js";

const example = (name: string): string => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));

describe("examples", () => {
  it("local-runtime.mjs runs the upstream usage through the package's public export", () => {
    const home = tempDir();
    try {
      const r = spawnSync(process.execPath, [example("local-runtime.mjs")], { env: { ...process.env, CODERCLAW_HOME: home.path }, encoding: "utf8", timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe("pending undefined\nplanning undefined\nrunning undefined\ncompleted 100\noutput: Add authentication to the API\n");
    } finally {
      home.remove();
    }
  });

  it("two-node-mesh.mjs pairs two embedded nodes and runs a task on the other one", () => {
    const r = spawnSync(process.execPath, [example("two-node-mesh.mjs")], { encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^paired, comparison code \d{6}\nruns on the other node: true\npending \nplanning \nrunning \n(running \d+\n)+completed 100\n$/);
  });
});
