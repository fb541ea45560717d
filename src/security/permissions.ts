/** Every permission the runtime checks. `admin:all` implies all of them. */
export const PERMISSIONS = [
  "task:submit",
  "task:read",
  "task:cancel",
  "agent:invoke",
  "skill:execute",
  "config:read",
  "config:write",
  "admin:all",
  // After admin:all so the bits of the permissions before it keep their places.
  "task:approve",
  // Signing a `publication` of a skill or agent to the mesh registry (issue 23).
  "registry:publish",
] as const;

/** One permission. */
export type Permission = (typeof PERMISSIONS)[number];

/** Names of the roles every mesh has. */
export type BuiltinRole = "admin" | "developer" | "readonly" | "ci";

/** Permission sets of the built-in roles (the upstream CoderClaw sets). */
export const BUILTIN_ROLES: Readonly<Record<BuiltinRole, readonly Permission[]>> = {
  admin: ["admin:all"],
  developer: ["task:submit", "task:read", "task:cancel", "agent:invoke", "skill:execute", "config:read"],
  readonly: ["task:read", "config:read"],
  ci: ["task:submit", "task:read", "agent:invoke"],
};

/**
 * Permission sets are bitmasks so that a check is one AND, whatever the number of
 * roles and grants loaded.
 */
export type PermissionMask = number;

const BIT = new Map<string, number>(PERMISSIONS.map((p, i) => [p, 1 << i]));

/** Bit of `admin:all`. */
export const ADMIN_BIT: PermissionMask = 1 << PERMISSIONS.indexOf("admin:all");

/** True when `value` names a permission. */
export function isPermission(value: string): value is Permission {
  return BIT.has(value);
}

/** Bit of one permission. */
export function permissionBit(permission: Permission): PermissionMask {
  return BIT.get(permission) ?? 0;
}

/** Mask of a list of permissions. */
export function maskOf(permissions: Iterable<Permission>): PermissionMask {
  let mask = 0;
  for (const p of permissions) mask |= permissionBit(p);
  return mask;
}

/** True when `mask` grants `permission`, directly or through `admin:all`. */
export function maskAllows(mask: PermissionMask, permission: Permission): boolean {
  return (mask & (permissionBit(permission) | ADMIN_BIT)) !== 0;
}

/** The permissions in a mask, in declaration order. */
export function permissionsOf(mask: PermissionMask): Permission[] {
  return PERMISSIONS.filter((p) => (mask & permissionBit(p)) !== 0);
}
