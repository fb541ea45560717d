import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_BWRAP, sandboxArgv, type SandboxSpec } from "../../src/agents/sandbox.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Real bwrap (installed by .ci/run), real /bin/sh. */
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function run(spec: SandboxSpec, script: string): { code: number | null; out: string } {
  const [cmd, ...args] = sandboxArgv(spec, ["/bin/sh", "-c", script]);
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { code: r.status, out: r.stdout + r.stderr };
}

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanups.push(d.remove);
  return d.path;
}

describe("sandboxArgv", () => {
  it("keeps a hidden path hidden when the workspace contains it (a repository holding the data directory)", () => {
    const workspace = dir("cc-sbx-ws-");
    const dataDir = join(workspace, ".coderclaw");
    mkdirSync(join(dataDir, "identity"), { recursive: true });
    writeFileSync(join(dataDir, "identity", "device.key"), "secret");
    writeFileSync(join(workspace, "src.txt"), "code");
    const r = run({ bwrap: DEFAULT_BWRAP, workspace, hide: [dataDir] }, "cat .coderclaw/identity/device.key 2>/dev/null || echo key-hidden; cat src.txt");
    expect(r.out).toBe("key-hidden\ncode");
  });

  it("writes nothing outside the workspace: /tmp is private, the system read-only", () => {
    const workspace = dir("cc-sbx-ws-");
    const outside = join(dir("cc-sbx-out-"), "escaped");
    const r = run(
      { bwrap: DEFAULT_BWRAP, workspace, hide: [] },
      `{ echo x > ${outside}; } 2>/dev/null && echo OUTSIDE-WRITTEN || echo outside-refused; ` +
        "echo t > /tmp/cc-sbx-probe && echo tmp-private; touch /etc/cc-sbx-probe 2>/dev/null && echo ETC-WRITTEN || echo etc-read-only; echo w > here && echo workspace-written",
    );
    expect(r.out.split("\n").filter(Boolean)).toEqual(["outside-refused", "tmp-private", "etc-read-only", "workspace-written"]);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync("/tmp/cc-sbx-probe")).toBe(false);
    expect(readFileSync(join(workspace, "here"), "utf8")).toBe("w\n");
  });

  it("refuses, naming the missing binary and how to allow the work, when bwrap is not installed", () => {
    expect(() => sandboxArgv({ bwrap: "/nonexistent/bwrap", workspace: "/", hide: [] }, ["/bin/true"])).toThrow(
      /\/nonexistent\/bwrap is not installed: install it \(apt-get install bubblewrap\) or set security\.sandbox: off/,
    );
  });
});
