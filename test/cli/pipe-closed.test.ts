import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const homes: Array<{ remove(): void }> = [];
afterEach(() => {
  for (const h of homes.splice(0)) h.remove();
});

describe("a reader that goes away", () => {
  beforeAll(assertBuilt);

  it("ends the command quietly, as `| head` expects, with nothing printed about EPIPE", async () => {
    const home = tempDir("pipe-closed");
    homes.push(home);
    // help is long enough to need more than one write once the reading end is gone
    const child = spawn(process.execPath, [CLI, "--help"], { env: { ...process.env, CODERCLAW_HOME: home.path }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });
});
