import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * `coderclaw service`: the unit text is checked as text (and by
 * `systemd-analyze verify` where it is installed); install, status and
 * uninstall run for real against an XDG_CONFIG_HOME in a temp dir. Enabling
 * is only exercised where systemd is not running, so a test run never
 * installs a service on the developer's machine.
 */

const systemdRunning = existsSync("/run/systemd/system");
const cleanups: Array<() => void> = [];
let home: string;
let env: NodeJS.ProcessEnv;

beforeAll(() => {
  assertBuilt();
  const h = tempDir("cc service home %$ ");
  const xdg = tempDir("cc-service-xdg-");
  cleanups.push(h.remove, xdg.remove);
  home = h.path;
  env = { XDG_CONFIG_HOME: xdg.path, HOME: xdg.path };
});
afterAll(() => {
  for (const c of cleanups.splice(0)) c();
});

const unitPath = (): string => join(env.XDG_CONFIG_HOME!, "systemd", "user", "coderclaw.service");

describe("service install --print", () => {
  it("writes a systemd unit that runs start for this home, quoting what systemd would expand", async () => {
    const r = await runCli(["service", "install", "--user", "--print", "--", "--http", "127.0.0.1:8080"], home, 20_000, env);
    expect(r.code).toBe(0);
    const exec = /^ExecStart=(.*)$/m.exec(r.stdout)?.[1];
    // The home's name holds a space, % and $: quoted, with % and $ doubled so systemd passes them through.
    expect(exec).toBe(`${process.execPath} ${CLI} --home "${home.replace(/%/g, "%%").replace(/\$/g, "$$$$")}" start --http 127.0.0.1:8080`);
    expect(r.stdout).toMatch(/^KillSignal=SIGINT$/m);
    expect(r.stdout).toMatch(/^Restart=on-failure$/m);
    expect(r.stdout).toMatch(/^WantedBy=default\.target$/m);
    expect(existsSync(unitPath())).toBe(false);
  });

  it("targets multi-user.target for a system unit", async () => {
    const r = await runCli(["service", "install", "--system", "--print"], home, 20_000, env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^WantedBy=multi-user\.target$/m);
  });

  it("writes a launchd plist with the arguments XML-escaped", async () => {
    const r = await runCli(["service", "install", "--manager", "launchd", "--print", "--", "--http", "127.0.0.1:8080", "<&>"], home, 20_000, env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("<string>dev.coderclaw.node</string>");
    expect(r.stdout).toContain(`<string>${CLI}</string>\n    <string>--home</string>\n    <string>${home}</string>\n    <string>start</string>\n    <string>--http</string>\n    <string>127.0.0.1:8080</string>\n    <string>&lt;&amp;&gt;</string>`);
    expect(r.stdout).toContain(`<string>${join(home, "service.log")}</string>`);
  });

  it("refuses --user with --system, and --system for launchd", async () => {
    const both = await runCli(["service", "install", "--user", "--system", "--print"], home, 20_000, env);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("choose one");
    const launchd = await runCli(["service", "install", "--manager", "launchd", "--system", "--print"], home, 20_000, env);
    expect(launchd.code).toBe(2);
    expect(launchd.stderr).toContain("per-user launchd agent");
  });
});

describe("service install, status, uninstall", () => {
  it.skipIf(systemdRunning)("says clearly that systemd is not running, with the unit written", async () => {
    const r = await runCli(["service", "install", "--user"], home, 20_000, env);
    expect(r.code).toBe(3);
    expect(r.stdout.trim()).toBe(unitPath());
    expect(r.stderr).toContain(`wrote ${unitPath()}, but systemd is not running on this machine`);
    expect(r.stderr).toContain("systemctl --user enable --now coderclaw.service");
    expect(readFileSync(unitPath(), "utf8")).toMatch(/^ExecStart=.* start$/m);
  });

  it("--no-enable only writes the file", async () => {
    const r = await runCli(["service", "install", "--user", "--no-enable", "--", "--no-mdns"], home, 20_000, env);
    expect(r.code).toBe(0);
    expect(readFileSync(unitPath(), "utf8")).toMatch(/^ExecStart=.* start --no-mdns$/m);
  });

  it.skipIf(spawnSync("systemd-analyze", ["--version"]).status !== 0)("writes a unit systemd-analyze verify accepts", () => {
    // verify wants the unit file named as the unit, in a directory it may read alone.
    const dir = tempDir("cc-service-verify-");
    cleanups.push(dir.remove);
    mkdirSync(dir.path, { recursive: true });
    const copy = join(dir.path, "coderclaw.service");
    spawnSync("cp", [unitPath(), copy]);
    const r = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8" });
    expect(r.stderr.split("\n").filter((l) => l.includes("coderclaw.service"))).toEqual([]);
    expect(r.status).toBe(0);
  });

  it("status reports the installed file and what it runs", async () => {
    const r = await runCli(["service", "status", "--user", "--json"], home, 20_000, env);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as { manager: string; scope: string; path: string; installed: boolean; state: string; execStart: string };
    expect(s).toMatchObject({ manager: "systemd", scope: "user", path: unitPath(), installed: true });
    expect(s.execStart).toMatch(/ start --no-mdns$/);
    if (!systemdRunning) expect(s.state).toContain("systemd is not running");
  });

  it("uninstall removes the file, and refuses when there is nothing to remove", async () => {
    const r = await runCli(["service", "uninstall", "--user"], home, 20_000, env);
    expect(r.code).toBe(0);
    expect(existsSync(unitPath())).toBe(false);
    const again = await runCli(["service", "uninstall", "--user"], home, 20_000, env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("no service installed");
    const status = JSON.parse((await runCli(["service", "status", "--user", "--json"], home, 20_000, env)).stdout) as { installed: boolean };
    expect(status.installed).toBe(false);
  });
});
