import { CoderClawError } from "../contract/errors.js";
import { BUILTIN_ROLES, maskOf, type Permission, type PermissionMask } from "./permissions.js";

/** A role defined in `.coderClaw/security.yaml`. */
export interface CustomRoleDefinition {
  /** Roles whose permissions this one includes. */
  inherits?: readonly string[];
  /** Permissions added on top of the inherited ones. */
  additionalPermissions?: readonly Permission[];
}

/** Effective permission masks of every known role, computed once when roles change. */
export interface RoleTable {
  /** Mask of a role; 0 for an unknown role, so unknown roles grant nothing. */
  mask(role: string): PermissionMask;
  /** True when the role is built in or defined. */
  has(role: string): boolean;
  /** All role names. */
  readonly names: readonly string[];
}

/**
 * Resolves built-in and custom roles to permission masks. Inheritance cycles and
 * references to unknown roles are configuration errors, reported with the path of
 * roles that forms the cycle. A custom role may not redefine a built-in one, so
 * `readonly` means the same on every node.
 */
export function buildRoleTable(custom: Readonly<Record<string, CustomRoleDefinition>> = {}): RoleTable {
  const masks = new Map<string, PermissionMask>();
  for (const [name, perms] of Object.entries(BUILTIN_ROLES)) masks.set(name, maskOf(perms));
  for (const name of Object.keys(custom)) {
    if (masks.has(name)) throw new CoderClawError("CONFIG", `role ${name}: redefines a built-in role`, { field: `roles.${name}` });
  }

  const resolving = new Set<string>();
  const resolve = (name: string, path: readonly string[]): PermissionMask => {
    const known = masks.get(name);
    if (known !== undefined) return known;
    const def = custom[name];
    if (def === undefined) {
      throw new CoderClawError("CONFIG", `role ${path.at(-1) ?? name}: inherits unknown role ${name}`, { field: `roles.${path.at(-1) ?? name}.inherits` });
    }
    if (resolving.has(name)) {
      throw new CoderClawError("CONFIG", `role inheritance cycle: ${[...path, name].join(" -> ")}`, { field: `roles.${name}.inherits` });
    }
    resolving.add(name);
    let mask = maskOf(def.additionalPermissions ?? []);
    for (const parent of def.inherits ?? []) mask |= resolve(parent, [...path, name]);
    resolving.delete(name);
    masks.set(name, mask);
    return mask;
  };
  for (const name of Object.keys(custom)) resolve(name, []);

  const names = [...masks.keys()].sort();
  return {
    mask: (role) => masks.get(role) ?? 0,
    has: (role) => masks.has(role),
    names,
  };
}
