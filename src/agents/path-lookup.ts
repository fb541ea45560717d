import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";

/**
 * Find `program` the way a shell would: a name with a slash is taken as a path,
 * a bare name is searched in each PATH entry. Returns the absolute path of the
 * first regular file with the execute bit for us, or undefined.
 *
 * Done by hand rather than by spawning `which` so that availability checks cost a
 * few stat calls and work where `which` is missing.
 */
export function findOnPath(program: string, pathEnv: string | undefined): string | undefined {
  if (program.length === 0) return undefined;
  if (program.includes("/")) return isExecutableFile(program) ? program : undefined;
  for (const dir of (pathEnv ?? "").split(delimiter)) {
    // An empty PATH entry means the current directory, which we refuse to trust.
    if (dir.length === 0 || !isAbsolute(dir)) continue;
    const candidate = join(dir, program);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
