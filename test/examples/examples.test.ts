import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli, startCli } from "../helpers/cli.js";
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

  it("phase1-workflow.mjs runs upstream's Phase 1 orchestrator calls unchanged, in-process and through a running node", async () => {
    const home = tempDir();
    try {
      const expected = /^status: completed\nAnalyze the architecture for implementing: a login page \(0 before it\): \d+ characters\nImplement the feature: a login page \(1 before it\): \d+ characters\n(Generate tests for|Review the implementation of): a login page \(1 before it\): \d+ characters\n(Generate tests for|Review the implementation of): a login page \(1 before it\): \d+ characters\n$/;
      const r = spawnSync(process.execPath, [example("phase1-workflow.mjs")], { env: { ...process.env, CODERCLAW_HOME: home.path }, encoding: "utf8", timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(expected);
      // With a node running on the home, the workflow is the node's: it shows in its list.
      const node = await startCli(["start", "--no-mdns"], home.path, /control socket/);
      try {
        const viaNode = spawnSync(process.execPath, [example("phase1-workflow.mjs")], { env: { ...process.env, CODERCLAW_HOME: home.path }, encoding: "utf8", timeout: 20_000 });
        expect(viaNode.status, viaNode.stderr).toBe(0);
        expect(viaNode.stdout).toMatch(expected);
        const list = await runCli(["workflow", "list", "--json"], home.path);
        expect((JSON.parse(list.stdout) as Array<{ status: string }>).map((w) => w.status)).toEqual(["completed", "completed"]);
      } finally {
        await node.stop();
      }
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
