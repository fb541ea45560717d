import { homedir } from "node:os";
import { join, resolve } from "node:path";

/**
 * The data directory: an explicit one wins, then `$CODERCLAW_HOME`, then
 * `~/.coderclaw`.
 */
export function resolveDataDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit !== undefined && explicit !== "") return resolve(explicit);
  const fromEnv = env.CODERCLAW_HOME;
  if (fromEnv !== undefined && fromEnv !== "") return resolve(fromEnv);
  return join(homedir(), ".coderclaw");
}

/** Paths inside a data directory. */
export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    database: join(dataDir, "db"),
    workspaces: join(dataDir, "workspaces"),
    identity: join(dataDir, "identity"),
    controlSocket: join(dataDir, "control.sock"),
    controlToken: join(dataDir, "control.token"),
    /** Sessions of the HTTP API: hashes of their tokens, expiry, scope and revocation (mode 0600). */
    sessions: join(dataDir, "sessions.json"),
    /** One record per process group agents are running (see src/agents/process-records.ts). */
    processes: join(dataDir, "run", "processes"),
  };
}
