import { lstat, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathProblem } from "../../src/workspace/manifest.js";

/**
 * Why the artifacts named `paths` cannot be written under `out`, or undefined.
 * Names come from the task's executor (through a node, or a `--server` whose
 * listing is its word only): each is checked as a manifest path is, and none
 * may be written over a file already there or through a link, so that a
 * refusal, found before anything is written, leaves nothing behind.
 * `alreadyThere` is asked of a regular file found where an artifact goes
 * (with its size), once every directory above it is known to be one: true
 * lets it stay.
 */
export async function artifactWriteProblem(out: string, paths: readonly string[], alreadyThere?: (path: string, file: string, size: number) => Promise<boolean>): Promise<string | undefined> {
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
      if (i === segments.length) {
        const compared = found.isFile() && alreadyThere !== undefined;
        if (compared && (await alreadyThere(path, join(out, at), found.size))) break;
        return `${join(out, at)} exists already${compared ? " with other bytes" : ""}: artifacts are not written over files (choose another --out)`;
      }
      if (!found.isDirectory()) return `${join(out, at)} is ${found.isSymbolicLink() ? "a symbolic link" : "not a directory"}: artifact "${path.slice(0, 200)}" would be written through it`;
    }
  }
  return undefined;
}

/**
 * Writes a task's artifacts under `out`, all or none: every name is checked
 * first ({@link artifactWriteProblem}), and a refusal, answered as why,
 * writes nothing; files are then created exclusively, never over a file or
 * through a link. A file already there with the artifact's very bytes is
 * left as it is, so that the same artifacts can be written again into the
 * same directory.
 */
export async function writeResultArtifacts(out: string, artifacts: ReadonlyArray<{ path: string; bytes: Uint8Array }>): Promise<string | undefined> {
  const byPath = new Map(artifacts.map((a) => [a.path, a.bytes]));
  const kept = new Set<string>();
  const sameBytes = async (path: string, file: string, size: number): Promise<boolean> => {
    const wanted = byPath.get(path);
    // Compared only at the artifact's size: a file of another size is refused without being read.
    if (wanted === undefined || size !== wanted.byteLength || !Buffer.from(wanted).equals(await readFile(file))) return false;
    kept.add(path);
    return true;
  };
  const refused = await artifactWriteProblem(out, artifacts.map((a) => a.path), sameBytes);
  if (refused !== undefined) return refused;
  for (const a of artifacts) {
    if (kept.has(a.path)) continue;
    const target = join(out, a.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, a.bytes, { flag: "wx" });
  }
  return undefined;
}
