import { describe, expect, it } from "vitest";
import { BUILTIN_ROLES, isPermission, maskAllows, maskOf, permissionBit } from "../../src/security/permissions.js";

describe("registry:publish permission", () => {
  it("is a permission that admin holds and developer does not", () => {
    expect(isPermission("registry:publish")).toBe(true);
    expect(maskAllows(maskOf(BUILTIN_ROLES.admin), "registry:publish")).toBe(true);
    expect(maskAllows(maskOf(BUILTIN_ROLES.developer), "registry:publish")).toBe(false);
  });

  it("keeps the bits of earlier permissions in place, since masks are replicated", () => {
    expect(permissionBit("admin:all")).toBe(1 << 7);
    expect(permissionBit("task:approve")).toBe(1 << 8);
    expect(permissionBit("registry:publish")).toBe(1 << 9);
  });
});
