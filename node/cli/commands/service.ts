import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { CoderClawError } from "../../../src/contract/errors.js";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import { EXIT } from "../exit-codes.js";
import type { AccessOptions } from "../runtime-access.js";
import { LAUNCHD_LABEL, SERVICE_NAME, serviceFilePath, serviceFileText, type ServiceTarget } from "../service-unit.js";

interface TargetOptions {
  manager?: "systemd" | "launchd";
  user?: boolean;
  system?: boolean;
}

/**
 * The CLI's entry: the built CLI is one bundle whose chunks sit beside main.js
 * (see `build:cli`); compiled module by module (and under the tests) this file
 * is one directory below it.
 */
function cliMain(): string {
  const beside = fileURLToPath(new URL("main.js", import.meta.url));
  return existsSync(beside) ? beside : fileURLToPath(new URL("../main.js", import.meta.url));
}

function targetFor(opts: TargetOptions): ServiceTarget {
  const manager = opts.manager ?? (process.platform === "darwin" ? "launchd" : "systemd");
  if (opts.user && opts.system) throw new CoderClawError("INVALID_INPUT", "--user and --system: choose one", { field: "system" });
  if (manager === "launchd") {
    if (opts.system) throw new CoderClawError("INVALID_INPUT", "--system: only a per-user launchd agent is supported; omit --system", { field: "system" });
    return { kind: "launchd", scope: "user" };
  }
  // As root a user unit would only run while root is logged in, which is not what a server wants.
  const scope = opts.system || (!opts.user && process.getuid?.() === 0) ? "system" : "user";
  return { kind: "systemd", scope };
}

/** True when systemd is the running init: the test systemd itself documents (sd_booted). */
function systemdRunning(): boolean {
  return existsSync("/run/systemd/system");
}

function managerRunning(target: ServiceTarget): boolean {
  return target.kind === "systemd" ? systemdRunning() : process.platform === "darwin";
}

function managerCommand(target: ServiceTarget, args: string[]): string[] {
  if (target.kind === "launchd") return ["launchctl", ...args];
  return target.scope === "user" ? ["systemctl", "--user", ...args] : ["systemctl", ...args];
}

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0) {
    throw new CoderClawError("UNAVAILABLE", `\`${argv.join(" ")}\` failed: ${(r.error?.message ?? r.stderr).trim() || `exit ${r.status}`}`);
  }
}

function enableSteps(target: ServiceTarget, path: string): string[][] {
  if (target.kind === "launchd") return [managerCommand(target, ["load", "-w", path])];
  return [managerCommand(target, ["daemon-reload"]), managerCommand(target, ["enable", "--now", `${SERVICE_NAME}.service`])];
}

function disableSteps(target: ServiceTarget, path: string): string[][] {
  if (target.kind === "launchd") return [managerCommand(target, ["unload", "-w", path])];
  return [managerCommand(target, ["disable", "--now", `${SERVICE_NAME}.service`])];
}

function notRunningMessage(target: ServiceTarget): string {
  return target.kind === "systemd" ? "systemd is not running on this machine (no /run/systemd/system)" : "launchd is only on macOS";
}

function withTargetOptions(c: Command): Command {
  return c
    .addOption(new Option("--manager <name>", "service manager (default: launchd on macOS, else systemd)").choices(["systemd", "launchd"]))
    .option("--user", "a systemd user unit (the default unless run as root)")
    .option("--system", "a systemd system unit in /etc/systemd/system (the default as root)");
}

/** `coderclaw service install|uninstall|status`: run the node under systemd or launchd. */
export function serviceCommand(setExit: (code: number) => void): Command {
  const service = new Command("service").description("run this node as a service: a systemd unit, or a launchd agent on macOS");

  service.addCommand(
    withTargetOptions(new Command("install"))
      .description("write the unit (or plist) that runs `coderclaw start` for this home, then enable and start it")
      .argument("[start-args...]", "arguments for `start`, after --, e.g. -- --http 127.0.0.1:8080")
      .option("--print", "print the unit's text and write nothing")
      .option("--no-enable", "only write the file; do not enable or start the service")
      .addHelpText("after", "\nExamples:\n  coderclaw service install\n  coderclaw service install --user -- --http 127.0.0.1:8080\n  coderclaw service install --print > coderclaw.service\n")
      .action((startArgs: string[], opts: TargetOptions & { print?: boolean; enable: boolean }, cmd: Command) => {
        const target = targetFor(opts);
        const dataDir = resolve(resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home));
        const text = serviceFileText({ nodePath: process.execPath, cliPath: cliMain(), dataDir, startArgs }, target);
        if (opts.print) {
          process.stdout.write(text);
          setExit(EXIT.ok);
          return;
        }
        const path = serviceFilePath(target);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, text, { mode: 0o644 });
        process.stdout.write(`${path}\n`);
        if (!opts.enable) {
          process.stderr.write(`wrote ${path}; not enabled (--no-enable)\n`);
          setExit(EXIT.ok);
          return;
        }
        const steps = enableSteps(target, path);
        if (!managerRunning(target)) {
          throw new CoderClawError("UNAVAILABLE", `wrote ${path}, but ${notRunningMessage(target)}, so the service was neither enabled nor started; where it runs: ${steps.map((s) => s.join(" ")).join(" && ")}`);
        }
        for (const step of steps) run(step);
        process.stderr.write(`installed and started ${target.kind === "launchd" ? LAUNCHD_LABEL : `${SERVICE_NAME}.service`} (${target.scope})\n`);
        setExit(EXIT.ok);
      }),
  );

  service.addCommand(
    withTargetOptions(new Command("uninstall"))
      .description("stop and disable the service, then remove its unit (or plist)")
      .action((opts: TargetOptions) => {
        const target = targetFor(opts);
        const path = serviceFilePath(target);
        if (!existsSync(path)) throw new CoderClawError("NOT_FOUND", `no service installed: ${path} does not exist`);
        if (managerRunning(target)) for (const step of disableSteps(target, path)) run(step);
        else process.stderr.write(`${notRunningMessage(target)}: removing the file only\n`);
        rmSync(path);
        if (target.kind === "systemd" && managerRunning(target)) run(managerCommand(target, ["daemon-reload"]));
        process.stderr.write(`removed ${path}\n`);
        setExit(EXIT.ok);
      }),
  );

  service.addCommand(
    withTargetOptions(new Command("status"))
      .description("whether the service is installed, and whether the service manager runs it")
      .option("--json", "print JSON")
      .action((opts: TargetOptions & { json?: boolean }) => {
        const target = targetFor(opts);
        const path = serviceFilePath(target);
        const installed = existsSync(path);
        const execStart = installed && target.kind === "systemd" ? (/^ExecStart=(.*)$/m.exec(readFileSync(path, "utf8"))?.[1] ?? null) : null;
        let state: string;
        if (!managerRunning(target)) state = "unknown: " + notRunningMessage(target);
        else {
          const argv = target.kind === "launchd" ? managerCommand(target, ["list", LAUNCHD_LABEL]) : managerCommand(target, ["is-active", `${SERVICE_NAME}.service`]);
          const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
          state = target.kind === "launchd" ? (r.status === 0 ? "loaded" : "not loaded") : r.stdout.trim() || "unknown";
        }
        if (opts.json) process.stdout.write(JSON.stringify({ manager: target.kind, scope: target.scope, path, installed, state, execStart }) + "\n");
        else process.stdout.write(`${target.kind} ${target.scope} service\n  file   ${path} (${installed ? "installed" : "not installed"})\n  state  ${state}\n${execStart === null ? "" : `  runs   ${execStart}\n`}`);
        setExit(EXIT.ok);
      }),
  );
  return service;
}
