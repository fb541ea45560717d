import { spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI } from "../helpers/cli.js";

beforeAll(assertBuilt);

describe("coderclaw demo (the README's main job)", () => {
  it("runs three node processes end to end: pairing, routing to the only capable node with live progress, kill, restart, convergence", async () => {
    const child = spawn(process.execPath, [CLI, "demo"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 110_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, out).toBe(0);
    expect(out).toMatch(/accepted by gamma/);
    expect(out).toMatch(/line 5: epsilon/);
    expect(out).toMatch(/result on beta: completed: 5 lines counted/);
    expect(out).toMatch(/converged: alpha, beta and gamma hold the same \d+ tasks/);
  }, 120_000);
});
