import { describe, expect, it } from "vitest";
import { compareVersions, parseRange } from "../../src/registry/version-range.js";
import { emptyLock, formatLockFile, parseLockFile } from "../../src/registry/lock-file.js";
import { installFolderName, packageNameSchema } from "../../src/registry/package-name.js";

describe("version ranges", () => {
  it.each([
    ["1.2.3", "1.2.3", true],
    ["1.2.3", "1.2.4", false],
    ["^1.2.3", "1.9.0", true],
    ["^1.2.3", "1.2.2", false],
    ["^1.2.3", "2.0.0", false],
    ["^0.2.3", "0.2.9", true],
    ["^0.2.3", "0.3.0", false],
    ["~1.2.3", "1.2.9", true],
    ["~1.2.3", "1.3.0", false],
    ["*", "10.0.0", true],
  ])("%s accepts %s: %s", (range, version, accepted) => {
    expect(parseRange(range).accepts(version)).toBe(accepted);
  });

  it("orders versions numerically and refuses what is not a range, naming the field", () => {
    expect(compareVersions("1.10.0", "1.9.0")).toBeGreaterThan(0);
    for (const bad of [">=1.0.0", "1.2", "01.2.3", "1.2.3-beta", "^^1.0.0"]) expect(() => parseRange(bad, "range")).toThrow(/range: .* is not a version range/);
  });
});

describe("package names and the lock file", () => {
  it("names cannot reach outside their folder", () => {
    for (const bad of ["../x", "team/../x", "team/x/y", "Team/x", "team/", "/x", "team/x.y", "team/-x"]) expect(packageNameSchema.safeParse(bad).success).toBe(false);
    expect(installFolderName("team/security-scanner")).toBe("team.security-scanner");
  });

  it("round-trips, sorted; a damaged lock file is refused naming file and field", () => {
    const entry = { version: "1.2.0", tree: "a".repeat(64), publication: "b".repeat(64), publisher: "12D3KooW", range: "^1.2.0", installedAt: new Date(0).toISOString() };
    const text = formatLockFile({ ...emptyLock(), skills: { "team/z": entry, "team/a": entry } });
    expect(Object.keys(parseLockFile(text, "skills.lock.json").skills)).toEqual(["team/a", "team/z"]);
    expect(() => parseLockFile(text.replace('"1.2.0"', '"1.2"'), "skills.lock.json")).toThrow(/skills\.lock\.json: skills\.team\/a\.version: must be a version/);
    expect(() => parseLockFile("{", "skills.lock.json")).toThrow(/skills\.lock\.json is not JSON/);
    expect(() => parseLockFile(text.replace('"^1.2.0"', '">=1"'), "skills.lock.json")).toThrow(/range: must be a version range/);
    expect(() => parseLockFile(text.replace("team/a", "../a"), "skills.lock.json")).toThrow(/must be <team>\/<name>/);
  });
});
