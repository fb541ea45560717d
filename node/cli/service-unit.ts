import { homedir } from "node:os";
import { join } from "node:path";

/** What the service runs: `node <cli> --home <dataDir> start <startArgs...>`. */
export interface ServiceSpec {
  /** Absolute path of the Node executable. */
  nodePath: string;
  /** Absolute path of the CLI entry point (dist/node/cli/main.js). */
  cliPath: string;
  /** Absolute data directory the node uses. */
  dataDir: string;
  /** Extra arguments for `start`, e.g. `--http 127.0.0.1:8080`. */
  startArgs: readonly string[];
}

/** Which service manager, and whether it runs for one user or for the machine. */
export type ServiceTarget = { kind: "systemd"; scope: "user" | "system" } | { kind: "launchd"; scope: "user" };

/** The service's name, as systemd and launchd know it. */
export const SERVICE_NAME = "coderclaw";
/** The launchd job label. */
export const LAUNCHD_LABEL = "dev.coderclaw.node";

function commandLine(spec: ServiceSpec): string[] {
  return [spec.nodePath, spec.cliPath, "--home", spec.dataDir, "start", ...spec.startArgs];
}

/**
 * One word of a systemd command line: systemd splits on whitespace and
 * expands `%` specifiers and `$` variables, so each word is quoted and both are doubled.
 */
function systemdWord(word: string): string {
  const escaped = word.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$");
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? escaped : `"${escaped}"`;
}

/** The text of a systemd unit that runs the node and restarts it when it fails. */
export function systemdUnit(spec: ServiceSpec, scope: "user" | "system"): string {
  return [
    "[Unit]",
    "Description=CoderClaw node",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${commandLine(spec).map(systemdWord).join(" ")}`,
    // SIGINT is what `start` handles as a clean stop (closes LevelDB and the mesh).
    "KillSignal=SIGINT",
    "TimeoutStopSec=30",
    "Restart=on-failure",
    "RestartSec=5",
    "",
    "[Install]",
    `WantedBy=${scope === "user" ? "default.target" : "multi-user.target"}`,
    "",
  ].join("\n");
}

function xml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** The text of a launchd agent plist that runs the node at login and keeps it alive. */
export function launchdPlist(spec: ServiceSpec): string {
  const args = commandLine(spec).map((a) => `    <string>${xml(a)}</string>`);
  const log = xml(join(spec.dataDir, "service.log"));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    "<dict>",
    "  <key>Label</key>",
    `  <string>${LAUNCHD_LABEL}</string>`,
    "  <key>ProgramArguments</key>",
    "  <array>",
    ...args,
    "  </array>",
    "  <key>RunAtLoad</key>",
    "  <true/>",
    "  <key>KeepAlive</key>",
    "  <dict>",
    "    <key>SuccessfulExit</key>",
    "    <false/>",
    "  </dict>",
    "  <key>StandardOutPath</key>",
    `  <string>${log}</string>`,
    "  <key>StandardErrorPath</key>",
    `  <string>${log}</string>`,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}

/** Where the unit or plist for `target` lives, following the XDG and launchd conventions. */
export function serviceFilePath(target: ServiceTarget, env: NodeJS.ProcessEnv = process.env): string {
  const home = env.HOME ?? homedir();
  if (target.kind === "launchd") return join(home, "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`);
  if (target.scope === "system") return join("/etc/systemd/system", `${SERVICE_NAME}.service`);
  const config = env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== "" ? env.XDG_CONFIG_HOME : join(home, ".config");
  return join(config, "systemd", "user", `${SERVICE_NAME}.service`);
}

/** The service file's text for `target`. */
export function serviceFileText(spec: ServiceSpec, target: ServiceTarget): string {
  return target.kind === "launchd" ? launchdPlist(spec) : systemdUnit(spec, target.scope);
}
