import { hostname } from "node:os";
import { z } from "zod";
import { isDeviceId } from "../../identity/device-id.js";
import { signStatement, type SignedStatement } from "../../identity/statement.js";
import { deviceIdSchema, meshIdSchema, registerStatementKindOnce, timestampSchema } from "../../identity/statement-kinds.js";
import type { Signer } from "./keys.js";

/** What a device name may be: what people type, like a hostname, and never something read as a device id. */
export const deviceNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "a device name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
  .refine((name) => !isDeviceId(name), "a device name cannot be a device id")
  // `--route auto|local` mean placement, so a device by those names could never be routed to by name.
  .refine((name) => !["auto", "local"].includes(name.toLowerCase()), "a device name cannot be auto or local (they are --route keywords)");

/**
 * Body of a `device-name` statement: `issuer` names `device` in `meshId`. It takes
 * effect when the issuer is the device itself or an admin of the mesh; the newest
 * one in effect names the device.
 */
export const deviceNameStatementSchema = z.strictObject({
  issuer: deviceIdSchema,
  device: deviceIdSchema,
  meshId: meshIdSchema,
  name: deviceNameSchema,
  issuedAt: timestampSchema,
});

/** Body of a `device-name` statement. */
export type DeviceNameStatement = z.infer<typeof deviceNameStatementSchema>;

declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    "device-name": DeviceNameStatement;
  }
}

registerStatementKindOnce("device-name", { schema: deviceNameStatementSchema, signer: (body) => body.issuer });

/** Signs a name for `device` as `signer` (the device itself, or an admin for it to take effect). */
export function signDeviceName(signer: Signer, body: { device: string; meshId: string; name: string; issuedAt?: number }): SignedStatement<"device-name"> {
  return signStatement(signer, "device-name", { issuer: signer.peerId, device: body.device, meshId: body.meshId, name: body.name, issuedAt: body.issuedAt ?? Date.now() });
}

/** Why a `device-name` statement has no effect, or undefined when it names its device. */
export function deviceNameRefusal(body: DeviceNameStatement, isAdmin: (deviceId: string) => boolean): string | undefined {
  if (body.issuer === body.device || isAdmin(body.issuer)) return undefined;
  return `device ${body.issuer} may not name device ${body.device}: only the device itself or an admin may`;
}

/**
 * The name of each device, from the `device-name` statements among `statements`:
 * the newest in effect (ties broken by statement id, so every member agrees).
 */
export function deviceNames(statements: readonly SignedStatement[], isAdmin: (deviceId: string) => boolean): Map<string, string> {
  const newest = new Map<string, SignedStatement<"device-name">>();
  for (const st of statements) {
    if ((st.kind as string) !== "device-name") continue;
    const named = st as SignedStatement<"device-name">;
    if (deviceNameRefusal(named.body, isAdmin) !== undefined) continue;
    const held = newest.get(named.body.device);
    if (held === undefined || named.body.issuedAt > held.body.issuedAt || (named.body.issuedAt === held.body.issuedAt && named.id > held.id)) newest.set(named.body.device, named);
  }
  return new Map([...newest].map(([device, st]) => [device, st.body.name]));
}

/**
 * The name a device takes when it enters a mesh: its hostname, made into a valid
 * name, with the end of its id when another device already has it. Undefined when
 * the hostname has nothing usable.
 */
export function defaultDeviceName(deviceId: string, taken: ReadonlySet<string>, host: string = hostname()): string | undefined {
  const base = host.split(".")[0]!.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 56);
  if (!deviceNameSchema.safeParse(base).success) return undefined;
  return taken.has(base.toLowerCase()) ? `${base}-${deviceId.slice(-6)}` : base;
}
