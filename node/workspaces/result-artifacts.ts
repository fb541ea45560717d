import { lstat, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathProblem } from "../../src/workspace/manifest.js";

/**
 * Why the artifacts named `paths` cannot be written under `out`, or undefined.
 * Names come from the task's executor (through a node, or a `--server` whose
 * listing is its word only): each is checked as a manifest path is, and none
 * may be written over a file already there or through a link, so that a
 * refusal, found before anything is written, leaves nothing behind.
 */
export async function artifactWriteProblem(out: string, paths: readonly string[]): Promise<string | undefined> {
  const files = new Set<string>();
  const dirs = new Set<string>();
  for (const path of paths) {
    const problem = pathProblem(path);
    if (problem !== undefined) return `artifact "${path.slice(0, 200)}" ${problem}`;
    if (files.has(path) || dirs.has(path)) return `artifact "${path.slice(0, 200)}" is named twice, or is also a directory of another`;
    files.add(path);
    const segments = path.split("/");
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join("/");
      if (files.has(dir)) return `artifact "${path.slice(0, 200)}" is under another artifact, "${dir.slice(0, 200)}"`;
      dirs.add(dir);
    }
    for (let i = 1; i <= segments.length; i++) {
      const at = segments.slice(0, i).join("/");
      const found = await lstat(join(out, at)).catch(() => undefined);
      if (found === undefined) break;
      if (i === segments.length) return `${join(out, at)} exists already: artifacts are not written over files (choose another --out)`;
      if (!found.isDirectory()) return `${join(out, at)} is ${found.isSymbolicLink() ? "a symbolic link" : "not a directory"}: artifact "${path.slice(0, 200)}" would be written through it`;
    }
  }
  return undefined;
}

/**
 * Writes a task's artifacts under `out`, all or none: every name is checked
 * first ({@link artifactWriteProblem}), and a refusal, answered as why,
 * writes nothing; files are then created exclusively, never over a file or
 * through a link.
 */
export async function writeResultArtifacts(out: string, artifacts: ReadonlyArray<{ path: string; bytes: Uint8Array }>): Promise<string | undefined> {
  const refused = await artifactWriteProblem(out, artifacts.map((a) => a.path));
  if (refused !== undefined) return refused;
  for (const a of artifacts) {
    const target = join(out, a.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, a.bytes, { flag: "wx" });
  }
  return undefined;
}
