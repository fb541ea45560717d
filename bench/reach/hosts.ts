import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeOptions } from "../../node/create-node.js";
import { builtBenchScript } from "../built-script.js";

// Hosts always run the built package (a test imports this file from source, the benchmark from dist/).
const HOST_SCRIPT = builtBenchScript("reach/node-host.js");

function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A mesh node running in a network namespace, driven through node-host.ts's command line protocol. */
export interface Host {
  readonly name: string;
  readonly peerId: string;
  /** Run a command of node-host.ts; rejects with its error, or after `timeoutMs`. */
  call<T = unknown>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** What the node wrote to stderr, for failure messages. */
  log(): string;
  /** Stop the node (gracefully, then by SIGKILL) and remove its home. */
  stop(): Promise<void>;
}

/** Options a host takes: NodeOptions that survive JSON. */
export type HostOptions = Pick<NodeOptions, "listen" | "bootstrap" | "mdns" | "relay" | "reserveRelay" | "holePunch" | "upnp" | "sandbox" | "leaseIntervalMs" | "leaseTimeoutMs"> & {
  /** A home to start from and keep at stop (a restart); default a fresh one, removed at stop. */
  home?: string;
  /** Not a mesh node: bare libp2p without a gater, that asks every relay it meets for a slot. Takes `listen` only. */
  stranger?: boolean;
};

/** Start a node in namespace `ns` from the built package; resolves once it listens. */
export function startHost(name: string, ns: string, options: HostOptions, readyMs = 20_000): Promise<Host> {
  const { home: given, ...nodeOptions } = options;
  const home = given === undefined ? tempDir(`cc-reach-${name}-`) : { path: given, remove: () => undefined };
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, HOST_SCRIPT, JSON.stringify({ ...nodeOptions, dataDir: home.path })], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => {
    for (const w of waiting.values()) w.reject(new Error(`${name} exited: ${stderr.slice(-2000)}`));
    waiting.clear();
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.end();
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killer);
    }
    home.remove();
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} not ready in ${readyMs} ms: ${stderr}`));
    }, readyMs);
    void exited.then(() => {
      clearTimeout(timer);
      home.remove();
      reject(new Error(`${name} exited before it was ready: ${stderr}`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      const message = JSON.parse(line) as { ready?: { peerId: string }; id?: number; ok?: unknown; error?: string };
      if (message.ready !== undefined) {
        clearTimeout(timer);
        resolve({
          name,
          peerId: message.ready.peerId,
          call: <T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000) =>
            new Promise<T>((resolveCall, rejectCall) => {
              const id = nextId++;
              const t = setTimeout(() => {
                waiting.delete(id);
                rejectCall(new Error(`${name}: ${cmd} gave no answer in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
              }, timeoutMs);
              waiting.set(id, {
                resolve: (v) => (clearTimeout(t), resolveCall(v as T)),
                reject: (e) => (clearTimeout(t), rejectCall(e)),
              });
              child.stdin.write(JSON.stringify({ id, cmd, args }) + "\n");
            }),
          log: () => stderr,
          stop,
        });
        return;
      }
      const w = message.id === undefined ? undefined : waiting.get(message.id);
      if (w === undefined) return;
      waiting.delete(message.id!);
      if (message.error !== undefined) w.reject(new Error(`${name}: ${message.error}`));
      else w.resolve(message.ok);
    });
  });
}
