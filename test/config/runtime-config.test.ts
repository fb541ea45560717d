import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import {
  RUNTIME_CONFIG_ENV,
  checkRuntimeConfig,
  formatRuntimeConfig,
  loadRuntimeConfig,
} from "../../src/config/runtime-config.js";
import { ConfigError } from "../../src/config/yaml-source.js";

let dir: string;
let home: string;
const noHome = (): Record<string, string> => ({ CODERCLAW_HOME: home });

function writeConfig(text: string, base = dir): string {
  mkdirSync(join(base, ".coderClaw"), { recursive: true });
  const file = join(base, ".coderClaw", "runtime.yaml");
  writeFileSync(file, text);
  return file;
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "coderclaw-config-"));
  home = mkdtempSync(join(tmpdir(), "coderclaw-home-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

describe("loadRuntimeConfig", () => {
  it("gives safe defaults without a file, each marked as a default", () => {
    const loaded = loadRuntimeConfig({ cwd: dir, env: noHome() });
    expect(loaded.file).toBeUndefined();
    expect(loaded.config).toEqual({
      mode: "local-only",
      transport: { type: "local", enabled: true },
      security: { enforceTrust: false, requireAuth: false, defaultRoles: ["developer"], sandbox: "required" },
      deployment: { mode: "local-only", allowRemoteSessions: false, maxConcurrentTasks: 10, maxOutputBytes: 1024 * 1024 },
      relay: false,
      upnp: false,
      labels: [],
      resources: {},
      code: { maxTreeBytes: 4 * 1024 ** 3 },
      http: { host: "127.0.0.1", port: 7420 },
      auth: {},
    });
    expect(new Set(Object.values(loaded.sources))).toEqual(new Set(["default"]));
  });

  it("takes the labels and resources a node advertises for placement, and refuses malformed ones naming the key", () => {
    const file = writeConfig("labels: [gpu, macos]\nresources:\n  cpu: 8\n  memoryGiB: 32\n");
    const { config } = loadRuntimeConfig({ cwd: dir, env: noHome() });
    expect([config.labels, config.resources]).toEqual([["gpu", "macos"], { cpu: 8, memoryGiB: 32 }]);
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_LABELS: "arm64, fast" } }).config.labels).toEqual(["arm64", "fast"]);
    writeFileSync(file, "labels: [has space]\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/labels/);
    writeFileSync(file, "resources:\n  cpu: lots\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/resources/);
  });

  it("takes code.keepBytes from the file or CODERCLAW_CODE_KEEP_BYTES (absent by default: the node takes a quarter of its blob quota), and refuses a negative one naming the key", () => {
    const file = writeConfig("code:\n  keepBytes: 1048576\n");
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.code).toEqual({ maxTreeBytes: 4 * 1024 ** 3, keepBytes: 1048576 });
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_CODE_KEEP_BYTES: "0" } }).config.code.keepBytes).toBe(0);
    writeFileSync(file, "code:\n  keepBytes: -1\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/code\.keepBytes/);
  });

  it("takes security.sandbox from the file or CODERCLAW_SANDBOX, and refuses other values naming the key", () => {
    const file = writeConfig("security:\n  sandbox: off\n");
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.security.sandbox).toBe("off");
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_SANDBOX: "required" } }).config.security.sandbox).toBe("required");
    writeFileSync(file, "security:\n  sandbox: maybe\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/security\.sandbox/);
  });

  it("takes relay as true, false or auto from the file or CODERCLAW_RELAY, and refuses other values naming the key", () => {
    const file = writeConfig("relay: auto\n");
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.relay).toBe("auto");
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_RELAY: "on" } }).config.relay).toBe(true);
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_RELAY: "auto" } }).config.relay).toBe("auto");
    writeFileSync(file, "relay: sometimes\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/relay.*true, false or auto/s);
    writeFileSync(file, "relay: false\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_RELAY: "maybe" } })).toThrow(/CODERCLAW_RELAY/);
  });

  it("takes upnp as a boolean from the file or CODERCLAW_UPNP, and refuses other values naming the key or variable", () => {
    const file = writeConfig("upnp: true\n");
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.upnp).toBe(true);
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_UPNP: "off" } }).config.upnp).toBe(false);
    writeFileSync(file, "upnp: sometimes\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/upnp/);
    writeFileSync(file, "upnp: false\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_UPNP: "maybe" } })).toThrow(/CODERCLAW_UPNP/);
  });

  it("refuses a GitHub rule pattern starting with !, naming the rule's key", () => {
    writeConfig(["auth:", "  github:", "    audience: coderclaw", "    rules:", "      - repository: acme/app", '        ref: "!refs/heads/main"', "        identity: ci", "        roles: [ci]", ""].join("\n"));
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/runtime\.yaml:6:14: auth\.github\.rules\[0\]\.ref: may not start with "!"/);
  });

  it("takes deployment.maxOutputBytes up to what one task-protocol message carries (4 MiB), and refuses more naming the key", () => {
    const file = writeConfig("deployment:\n  maxOutputBytes: 4194304\n");
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.deployment.maxOutputBytes).toBe(4 * 1024 * 1024);
    expect(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_MAX_OUTPUT_BYTES: "65536" } }).config.deployment.maxOutputBytes).toBe(65536);
    writeFileSync(file, "deployment:\n  maxOutputBytes: 4194305\n");
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome() })).toThrow(/deployment\.maxOutputBytes/);
  });

  it("reads the seed's runtime.yaml and says which line each value came from", () => {
    const file = writeConfig(
      [
        "mode: remote-enabled",
        "transport:",
        "  type: local",
        "  enabled: true",
        "security:",
        "  enforceTrust: true",
        "  requireAuth: true",
        "  defaultRoles: [developer]",
        "deployment:",
        "  mode: remote-enabled",
        "  allowRemoteSessions: true",
        "  maxConcurrentTasks: 50",
        "http:",
        "  port: 8443",
        "  tls:",
        "    cert: certs/node.pem",
        "    key: /etc/coderclaw/node.key",
        "agents: []",
        "",
      ].join("\n"),
    );
    const loaded = loadRuntimeConfig({ cwd: dir, env: noHome() });
    expect(loaded.file).toBe(file);
    expect(loaded.config.mode).toBe("remote-enabled");
    expect(loaded.config.deployment).toEqual({ mode: "remote-enabled", allowRemoteSessions: true, maxConcurrentTasks: 50, maxOutputBytes: 1024 * 1024 });
    expect(loaded.config.http).toEqual({
      host: "127.0.0.1",
      port: 8443,
      tls: { cert: join(dir, ".coderClaw", "certs", "node.pem"), key: "/etc/coderclaw/node.key" },
    });
    expect(loaded.sources["mode"]).toBe(`file:${file}:1`);
    expect(loaded.sources["deployment.maxConcurrentTasks"]).toBe(`file:${file}:12`);
    expect(loaded.sources["http.port"]).toBe(`file:${file}:14`);
    expect(loaded.sources["http.host"]).toBe("default");
    expect(loaded.warnings).toEqual([]);
  });

  it("lets environment variables override the file, and flags override both", () => {
    const file = writeConfig("deployment:\n  maxConcurrentTasks: 5\nhttp:\n  port: 9000\n");
    const loaded = loadRuntimeConfig({
      cwd: dir,
      env: { ...noHome(), CODERCLAW_HTTP_PORT: "9100", CODERCLAW_MAX_CONCURRENT_TASKS: "20", CODERCLAW_REQUIRE_AUTH: "yes" },
      overrides: { deployment: { maxConcurrentTasks: 30 } },
    });
    expect(loaded.config.http.port).toBe(9100);
    expect(loaded.sources["http.port"]).toBe("env:CODERCLAW_HTTP_PORT");
    expect(loaded.config.deployment.maxConcurrentTasks).toBe(30);
    expect(loaded.sources["deployment.maxConcurrentTasks"]).toBe("flag");
    expect(loaded.config.security.requireAuth).toBe(true);
    expect(loaded.file).toBe(file);
    expect(Object.keys(RUNTIME_CONFIG_ENV)).toContain("CODERCLAW_HTTP_PORT");
    expect(RUNTIME_CONFIG_ENV["CODERCLAW_MAX_CONCURRENT_TASKS"]).toBe("deployment.maxConcurrentTasks");
  });

  it("prefers the project's file over the home one", () => {
    writeConfig("mode: distributed-cluster\n", home);
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.mode).toBe("distributed-cluster");
    writeConfig("mode: remote-enabled\n");
    expect(loadRuntimeConfig({ cwd: dir, env: noHome() }).config.mode).toBe("remote-enabled");
  });

  it("names file, line and key for every kind of bad file", () => {
    const cases: [string, number, string, RegExp][] = [
      ["mode: sideways\n", 1, "mode", /Invalid option|expected one of/],
      ["mode: local-only\ndeployment:\n  maxConcurrentTasks: -3\n", 3, "deployment.maxConcurrentTasks", /too small|>=/i],
      ["security:\n  requireAuth: \"yes\"\n", 2, "security.requireAuth", /boolean/],
      ["http:\n  port: 70000\n", 2, "http.port", /too big|<=/i],
      ["deployment:\n  allowRemoteSesions: true\n", 2, "deployment.allowRemoteSesions", /unknown key/],
      ["mode: local-only\nmode: remote-enabled\n", 2, "", /invalid YAML/],
      ["mode: remote-enabled\ndeployment:\n  mode: local-only\n", 3, "deployment.mode", /must match mode/],
      ["transport:\n  type: http\n", 2, "transport.type", /baseUrl/],
      ["http:\n  tls:\n    cert: a.pem\n", 3, "http.tls.cert", /both cert and key/],
      ["transport:\n  type: websocket\n", 2, "transport.type", /Invalid option|expected one of/],
    ];
    for (const [text, line, key, message] of cases) {
      const file = writeConfig(text);
      const err = configError(() => loadRuntimeConfig({ cwd: dir, env: noHome() }));
      expect({ text, line: err.line, key: err.key, file: err.file }).toEqual({ text, line, key, file });
      expect(err.message).toMatch(message);
      expect(err.message.startsWith(`${file}:${line}:`)).toBe(true);
    }
  });

  it("refuses bad environment values and flags, naming the variable or flag", () => {
    expect(() => loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_HTTP_PORT: "eighty" } })).toThrow(/CODERCLAW_HTTP_PORT.*http\.port/);
    expect(() => loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_MAX_CONCURRENT_TASKS: "0" } })).toThrow(CoderClawError);
    expect(() => loadRuntimeConfig({ cwd: dir, env: noHome(), overrides: { http: { port: -1 } } })).toThrow(/flag http\.port/);
  });

  it("warns about a remote node listening beyond loopback without TLS", () => {
    writeConfig("mode: remote-enabled\nsecurity:\n  requireAuth: true\nhttp:\n  host: 0.0.0.0\n");
    const loaded = loadRuntimeConfig({ cwd: dir, env: noHome() });
    expect(loaded.config.deployment.allowRemoteSessions).toBe(true);
    expect(loaded.warnings).toEqual([expect.stringMatching(/0\.0\.0\.0.*without TLS/)]);
  });
});

describe("checkRuntimeConfig and formatRuntimeConfig", () => {
  it("checks the whole file, including the agents sections", () => {
    const good = writeConfig("mode: remote-enabled\nsecurity:\n  requireAuth: true\n");
    expect(checkRuntimeConfig(good)).toMatchObject({ ok: true, file: good, config: { mode: "remote-enabled" } });

    const badAgent = writeConfig("mode: local-only\nagents:\n  - id: lint\n    name: Lint\n");
    const result = checkRuntimeConfig(badAgent);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(new RegExp(`^${badAgent.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:`));

    const missing = checkRuntimeConfig(join(dir, "nope.yaml"));
    expect(missing).toMatchObject({ ok: false });
    if (!missing.ok) expect(missing.error.message).toMatch(/file not found/);
  });

  it("shows each effective value beside its source", () => {
    const file = writeConfig("mode: remote-enabled\n");
    const text = formatRuntimeConfig(loadRuntimeConfig({ cwd: dir, env: { ...noHome(), CODERCLAW_HTTP_PORT: "8080" } }));
    const lines = text.split("\n");
    expect(lines[0]).toBe(`# ${file}`);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^mode = "remote-enabled" +\\(file:.*runtime\\.yaml:1\\)$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^http\.port = 8080 +\(env:CODERCLAW_HTTP_PORT\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^security\.defaultRoles = \["developer"\] +\(default\)$/));
  });
});
