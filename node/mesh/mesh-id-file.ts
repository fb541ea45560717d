import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The mesh this device founded or joined, recorded in its identity directory:
 * read before the mesh's genesis arrives, so statements of other meshes a
 * member might offer are refused from the start.
 */
export interface MeshIdFile {
  read(): string | undefined;
  pin(meshId: string): void;
}

/** The mesh-id file in `identityDir`. */
export function meshIdFile(identityDir: string): MeshIdFile {
  const file = join(identityDir, "mesh-id");
  return {
    read: () => (existsSync(file) ? readFileSync(file, "utf8").trim() || undefined : undefined),
    pin: (meshId) => writeFileSync(file, meshId + "\n", { mode: 0o600 }),
  };
}
