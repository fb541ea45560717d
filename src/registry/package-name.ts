import { z } from "zod";

/**
 * A published name: `<team>/<name>`, lowercase letters, digits and single
 * hyphens. It becomes a folder name (`<team>.<name>`), so nothing in it can
 * reach outside the folder it is installed in.
 */
export const packageNameSchema = z
  .string()
  .max(96)
  .regex(/^[a-z0-9]+(-[a-z0-9]+)*\/[a-z0-9]+(-[a-z0-9]+)*$/, "must be <team>/<name> in lowercase letters, digits and hyphens, like team/security-scanner");

/** The folder a package is installed in, under a skills directory. */
export function installFolderName(name: string): string {
  return name.replace("/", ".");
}
