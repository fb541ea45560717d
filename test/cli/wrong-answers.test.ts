import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * Issue 18's "wrong answers": each was observed on main as a success (or the
 * wrong exit code, or a hang) for a command that did nothing or the wrong thing.
 * Each row runs the command as a user would and checks the exit code, the
 * message, and, where the command must have had no effect, that nothing changed.
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI with a working directory and environment of the row's choosing (`runCli` fixes both). */
function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

const cleanups: Array<() => unknown> = [];
const dirs = () => {
  const d = tempDir("cc-wrong-");
  cleanups.push(() => d.remove());
  return d.path;
};
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const json = <T>(r: Run): T => JSON.parse(r.stdout) as T;
type Device = { deviceId: string; level: string; revoked: boolean };
type Entry = { author: string; seq: number; time: number; body: { action: string; result: string; resource?: string } };

let a: string;
let b: string;
let lone: string;
let aId: string;
let bId: string;
let aAddr: string;
let httpUrl: string;
let token: string;

beforeAll(async () => {
  assertBuilt();
  a = dirs();
  b = dirs();
  lone = dirs();
  expect((await runCli(["mesh", "create", "--name", "wrong answers"], a)).code).toBe(0);
  const nodeA = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], a, /control socket/);
  cleanups.push(() => nodeA.stop());
  const nodeB = await startCli(["start", "--no-mdns"], b, /control socket/);
  cleanups.push(() => nodeB.stop());
  aAddr = /listening (\S+)/.exec(nodeA.output())![1]!;
  httpUrl = /http (http:\/\/\S+)/.exec(nodeA.output())![1]!;
  const invite = (await runCli(["mesh", "invite", "--level", "trusted"], a)).stdout.trim();
  expect((await runCli(["mesh", "join", invite], b, 30_000)).code).toBe(0);
  aId = json<{ deviceId: string }>(await runCli(["id", "--json"], a)).deviceId;
  bId = json<{ deviceId: string }>(await runCli(["id", "--json"], b)).deviceId;
  token = (await runCli(["session", "create"], a)).stdout.trim();
}, 90_000);

interface Row {
  name: string;
  run: () => Promise<Run>;
  code: number;
  /** Found in stdout or stderr. */
  says: RegExp;
  /** Must hold afterwards: what a refused command must not have changed. */
  unchanged?: () => Promise<void>;
}

const levelOf = async (home: string, device: string): Promise<Device> => json<Device[]>(await runCli(["devices", "list", "--json"], home)).find((d) => d.deviceId === device)!;

const rows: Row[] = [
  {
    name: "devices trust --level verified on a trusted device",
    run: () => runCli(["devices", "trust", bId, "--level", "verified"], a),
    code: 2,
    says: /already trusted; a verified certificate would change nothing/,
    unchanged: async () => expect((await levelOf(a, bId)).level).toBe("trusted"),
  },
  {
    name: "a trusted non-founder revokes the founder",
    run: () => runCli(["devices", "revoke", aId], b),
    code: 3,
    says: /only the founder can revoke the founder/,
    unchanged: async () => {
      expect(await levelOf(b, aId)).toMatchObject({ level: "trusted", revoked: false });
      const audit = json<Entry[]>(await runCli(["audit", "query", "--action", "trust.revoke", "--json"], b));
      expect(audit.filter((e) => e.body.result === "allowed")).toEqual([]);
      expect(audit.some((e) => e.body.result === "denied" && e.body.resource === aId)).toBe(true);
    },
  },
  { name: "audit verify --server (not offered over HTTP)", run: () => runCli(["audit", "verify", "--server", httpUrl, "--token", token], lone), code: 2, says: /--server: the HTTP API does not offer `audit verify`/ },
  { name: "devices list --server", run: () => runCli(["devices", "list", "--server", httpUrl, "--token", token], lone), code: 2, says: /--server: .*`devices list`/ },
  { name: "mesh status --server", run: () => runCli(["mesh", "status", "--server", httpUrl, "--token", token], lone), code: 2, says: /--server: .*`mesh status`/ },
  { name: "peers --server", run: () => runCli(["peers", "--server", httpUrl, "--token", token], lone), code: 2, says: /--server: .*`peers`/ },
  {
    name: "audit query --server reads the server's log",
    run: () => runCli(["audit", "query", "--json", "--server", httpUrl, "--token", token], lone),
    code: 0,
    says: /"action": "mesh.create"/,
    unchanged: async () => {
      const entries = json<Entry[]>(await runCli(["audit", "query", "--json", "--server", httpUrl, "--token", token], lone));
      expect(entries.some((e) => e.author === aId)).toBe(true);
    },
  },
  { name: "audit query --since 5m (a duration ago)", run: () => runCli(["audit", "query", "--since", "5m"], a), code: 0, says: /mesh\.create|session|pairing/ },
  { name: "audit query --since nonsense", run: () => runCli(["audit", "query", "--since", "nonsense"], a), code: 2, says: /--since: "nonsense" is neither a date/ },
  { name: "task list -n abc", run: () => runCli(["task", "list", "-n", "abc"], lone), code: 2, says: /--limit: "abc" is not a whole number/ },
  { name: "mesh invite --ttl forever", run: () => runCli(["mesh", "invite", "--ttl", "forever"], a), code: 2, says: /--ttl: "forever" is not a duration/ },
  { name: "devices trust bogus", run: () => runCli(["devices", "trust", "bogus", "--level", "verified"], a), code: 2, says: /no device of this mesh is named "bogus" or has an id or fingerprint starting with it/ },
  { name: "start --listen 4005", run: () => runCli(["start", "--no-mdns", "--listen", "4005"], lone), code: 2, says: /--listen: "4005" is not a multiaddr; for TCP port 4005 write \/ip4\/0\.0\.0\.0\/tcp\/4005/ },
  { name: "start --relay sometimes", run: () => runCli(["start", "--no-mdns", "--relay", "sometimes"], lone), code: 2, says: /--relay takes true, false or auto, not "sometimes"/ },
  { name: "start --upnp sometimes", run: () => runCli(["start", "--no-mdns", "--upnp", "sometimes"], lone), code: 2, says: /--upnp takes true or false, not "sometimes"/ },
  {
    name: "start --listen on a taken port",
    run: () => runCli(["start", "--no-mdns", "--listen", aAddr.replace(/\/p2p\/.*$/, "")], lone),
    code: 3,
    says: /^coderclaw: cannot listen on \/ip4\/127\.0\.0\.1\/tcp\/\d+: EADDRINUSE/m,
    unchanged: async () => expect((await runCli(["start", "--no-mdns", "--listen", aAddr.replace(/\/p2p\/.*$/, "")], lone)).stderr).not.toMatch(/^\s+at /m),
  },
  { name: "start --http on a taken port ends instead of hanging", run: () => runCli(["start", "--no-mdns", "--http", httpUrl.replace("http://", "")], lone), code: 3, says: /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/ },
  {
    name: "a failing task's stderr is printed once",
    run: () => runCli(["task", "submit", "-a", "shell", "echo oops-on-stderr >&2; exit 3", "--wait"], lone),
    code: 1,
    says: /failed: command exited with code 3/,
    unchanged: async () => {
      const r = await runCli(["task", "submit", "-a", "shell", "echo oops-on-stderr >&2; exit 3", "--wait"], lone);
      expect((r.stdout + r.stderr).match(/oops-on-stderr/g)).toHaveLength(1);
      // A line the command printed twice is shown twice: only the repetition by the failure is dropped.
      const twice = await runCli(["task", "submit", "-a", "shell", "echo same-line >&2; echo same-line >&2; exit 3", "--wait"], lone);
      expect((twice.stdout + twice.stderr).match(/same-line/g)).toHaveLength(2);
    },
  },
  { name: "status with no node running", run: () => runCli(["status"], lone), code: 3, says: /no node is running on/ },
  {
    name: "status of a running node: uptime in words, not ms",
    run: () => runCli(["status"], a),
    code: 0,
    says: /healthy, up \d+(ms|s|m|h|d), v/,
  },
  {
    name: "peers lists only agents the peer can run now",
    run: async () => {
      for (let i = 0; ; i++) {
        const r = await runCli(["peers", "--json"], b);
        const peer = json<Array<{ peerId: string; agents?: string[] }>>(r).find((p) => p.peerId === aId);
        if ((peer?.agents?.length ?? 0) > 0 || i === 40) return r;
        await new Promise((res) => setTimeout(res, 250));
      }
    },
    code: 0,
    says: /"echo"/,
    unchanged: async () => {
      const peer = json<Array<{ peerId: string; agents?: string[] }>>(await runCli(["peers", "--json"], b)).find((p) => p.peerId === aId)!;
      expect(peer.agents).toContain("shell");
      expect(peer.agents).not.toContain("code-creator");
    },
  },
  {
    name: "audit query -n 5 gives the five newest, by time",
    run: () => runCli(["audit", "query", "-n", "5", "--json"], a),
    code: 0,
    says: /"seq"/,
    unchanged: async () => {
      const all = json<Entry[]>(await runCli(["audit", "query", "--json"], a));
      const five = json<Entry[]>(await runCli(["audit", "query", "-n", "5", "--json"], a));
      expect(all.length).toBeGreaterThan(5);
      const times = all.map((e) => e.time);
      expect(times).toEqual([...times].sort((x, y) => x - y));
      expect(five.map((e) => `${e.author}/${e.seq}`)).toEqual(all.slice(-5).map((e) => `${e.author}/${e.seq}`));
    },
  },
  {
    name: "human output shows ISO 8601 UTC times, never epoch ms",
    run: () => runCli(["audit", "query"], a),
    code: 0,
    says: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/,
    unchanged: async () => {
      expect((await runCli(["audit", "query"], a)).stdout).not.toMatch(/\b1\d{12}\b/);
      expect((await runCli(["mesh", "invite"], a)).stderr).toMatch(/expires \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/);
      expect(json<{ expiresAt: unknown }>(await runCli(["mesh", "invite", "--json"], a)).expiresAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    },
  },
];

describe("issue 18: commands that said done when nothing happened", () => {
  it.each(rows.map((r) => [r.name, r] as const))("%s", { timeout: 60_000 }, async (_name, row) => {
    const r = await row.run();
    expect({ code: r.code, output: r.stdout + r.stderr }).toMatchObject({ code: row.code, output: expect.stringMatching(row.says) });
    await row.unchanged?.();
  });
});

describe("issue 18: configuration found where the user put it, and judged whole", () => {
  it("--home is where the runtime.yaml of the home is looked for, and a project's is found from a subdirectory", { timeout: 60_000 }, async () => {
    const home = dirs();
    const elsewhere = dirs();
    mkdirSync(join(home, ".coderClaw"));
    writeFileSync(join(home, ".coderClaw", "runtime.yaml"), "agents:\n  - id: from-home\n    name: From home\n    description: d\n    capabilities: [demo]\n    command: [echo, hi]\n    input: stdin\n");
    const ids = (r: Run) => json<Array<{ id: string }>>(r).map((x) => x.id);
    expect(ids(await cli(["--home", home, "agents", "--json"], { cwd: elsewhere, env: { CODERCLAW_HOME: dirs() } }))).toContain("from-home");

    const project = dirs();
    mkdirSync(join(project, ".coderClaw"));
    mkdirSync(join(project, "src", "deep"), { recursive: true });
    writeFileSync(join(project, ".coderClaw", "runtime.yaml"), "agents:\n  - id: from-project\n    name: From project\n    description: d\n    capabilities: [demo]\n    command: [echo, hi]\n    input: stdin\n");
    const fromSub = ids(await cli(["--home", home, "agents", "--json"], { cwd: join(project, "src", "deep") }));
    // The project's file wins over the home's, as the README says.
    expect(fromSub).toContain("from-project");
    expect(fromSub).not.toContain("from-home");
  });

  it("config check lists every error of every file with file, line and key, and the agent ids start refuses", { timeout: 60_000 }, async () => {
    const project = dirs();
    mkdirSync(join(project, ".coderClaw"));
    const runtime = join(project, ".coderClaw", "runtime.yaml");
    const security = join(project, ".coderClaw", "security.yaml");
    writeFileSync(runtime, "mode: sideways\nhttp:\n  port: high\nagents:\n  - id: shell\n    name: Mine\n    description: d\n    capabilities: [demo]\n    command: [sh]\n    input: stdin\n");
    writeFileSync(security, "enforceTrust: maybe\n");
    const r = await cli(["config", "check"], { cwd: project, env: { CODERCLAW_HOME: dirs() } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${runtime}:1:`);
    expect(r.stderr).toMatch(/mode/);
    expect(r.stderr).toContain(`${runtime}:3:`);
    expect(r.stderr).toMatch(/http\.port/);
    expect(r.stderr).toMatch(/agent id 'shell' is taken by a built-in agent/);
    expect(r.stderr).toContain(`${security}:1:`);
    expect(r.stderr).toMatch(/enforceTrust/);

    const named = await cli(["config", "check", security], { cwd: project });
    expect(named.code).toBe(2);
    expect(named.stderr).toMatch(/enforceTrust/);
    expect(named.stderr).not.toMatch(/unknown key/);
  });
});
