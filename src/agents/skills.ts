import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { SkillInfo } from "../contract/types.js";
import { ConfigError, parseYamlSource, validateYaml } from "../config/yaml-source.js";
import { bundledDir } from "../util/bundled-dir.js";
import { findOnPath } from "./path-lookup.js";

/** Largest SKILL.md read. */
export const MAX_SKILL_FILE_BYTES = 256 * 1024;
/** Largest frontmatter parsed. */
export const MAX_FRONTMATTER_BYTES = 64 * 1024;
/** Most skill folders read from one directory, so a huge directory cannot stall listing. */
export const MAX_SKILLS_PER_DIR = 256;

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const frontmatterSchema = z.looseObject({
  name: z.string().regex(NAME, "must be 1-64 lowercase letters, digits, '.', '_' or '-'"),
  description: z.string().min(1).max(1024),
  version: z.string().min(1).max(64).optional(),
  metadata: z
    .looseObject({
      coderclaw: z
        .looseObject({
          dangerous: z.boolean().optional(),
          os: z.array(z.string().min(1).max(32)).max(16).optional(),
          requires: z
            .object({
              bins: z.array(z.string().min(1).max(256)).max(32).optional(),
              anyBins: z.array(z.string().min(1).max(256)).min(1).max(32).optional(),
              env: z.array(z.string().regex(ENV_NAME, "must be an environment variable name")).max(32).optional(),
            })
            // A requirement we cannot check must not pass silently as met.
            .strict()
            .optional(),
        })
        .optional(),
    })
    .optional(),
});

/** Where a skill was found, in lookup order. */
export type SkillSource = "workspace" | "user" | "bundled";

/** A skill folder found on disk. */
export interface LoadedSkill {
  info: SkillInfo;
  /** The folder holding SKILL.md. */
  dir: string;
  source: SkillSource;
}

/** A directory to look for skill folders in. */
export interface SkillDir {
  path: string;
  source: SkillSource;
}

/** The `skills/` folder shipped with this package. */
export function bundledSkillsDir(): string | undefined {
  return bundledDir("skills");
}

/**
 * The default lookup order: `<workspace>/skills`, then `<dataDir>/skills`
 * (`~/.coderclaw/skills` for the default data directory), then the bundled ones.
 */
export function defaultSkillDirs(options: { workspaceDir?: string; dataDir: string }): SkillDir[] {
  const dirs: SkillDir[] = [];
  if (options.workspaceDir !== undefined) dirs.push({ path: join(options.workspaceDir, "skills"), source: "workspace" });
  dirs.push({ path: join(options.dataDir, "skills"), source: "user" });
  const bundled = bundledSkillsDir();
  if (bundled !== undefined) dirs.push({ path: bundled, source: "bundled" });
  return dirs;
}

/**
 * The YAML frontmatter of SKILL.md: the lines between the opening `---` (line 1)
 * and the next `---`, so its line numbers are one less than the file's.
 */
function frontmatter(text: string, file: string): string {
  const lines = text.split("\n");
  if (lines[0]?.trim() !== "---") throw new ConfigError(file, 1, "", "SKILL.md must start with a '---' line opening its YAML frontmatter");
  let size = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "---") return lines.slice(1, i).join("\n");
    size += line.length + 1;
    if (size > MAX_FRONTMATTER_BYTES) throw new ConfigError(file, i + 1, "", `frontmatter is over ${MAX_FRONTMATTER_BYTES} bytes`);
  }
  throw new ConfigError(file, 1, "", "frontmatter is not closed by a '---' line");
}

type CoderClawMetadata = NonNullable<NonNullable<z.output<typeof frontmatterSchema>["metadata"]>["coderclaw"]>;

/** The first requirement of a skill this node does not meet, in words; undefined when all are met. */
function unmetRequirement(meta: CoderClawMetadata | undefined, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (meta?.os !== undefined && !meta.os.includes(process.platform)) return `not supported on ${process.platform} (needs ${meta.os.join(" or ")})`;
  const requires = meta?.requires;
  const onPath = (bin: string): boolean => findOnPath(bin, env["PATH"]) !== undefined;
  const missingBin = requires?.bins?.find((bin) => !onPath(bin));
  if (missingBin !== undefined) return `binary not found on PATH: ${missingBin}`;
  if (requires?.anyBins !== undefined && !requires.anyBins.some(onPath)) return `none of these binaries is on PATH: ${requires.anyBins.join(", ")}`;
  const missingEnv = requires?.env?.find((name) => (env[name] ?? "") === "");
  if (missingEnv !== undefined) return `environment variable not set: ${missingEnv}`;
  return undefined;
}

/**
 * Read one skill folder. A malformed SKILL.md does not throw: the skill is
 * listed disabled (under its folder name) with the error, which names file
 * and line, so `coderclaw skills` shows what to fix.
 */
export function loadSkill(dir: string, source: SkillSource, env: Readonly<Record<string, string | undefined>>): LoadedSkill {
  const file = join(dir, "SKILL.md");
  const folder = dir.split("/").pop() ?? dir;
  try {
    const size = statSync(file).size;
    if (size > MAX_SKILL_FILE_BYTES) throw new ConfigError(file, 1, "", `file is ${size} bytes, over the limit of ${MAX_SKILL_FILE_BYTES}`);
    const yaml = frontmatter(readFileSync(file, "utf8"), file);
    const meta = validateYaml(parseYamlSource(yaml, file, { maxBytes: MAX_FRONTMATTER_BYTES, lineOffset: 1 }), frontmatterSchema);
    const disabledReason = unmetRequirement(meta.metadata?.coderclaw, env);
    const info: SkillInfo = {
      id: meta.name,
      name: meta.name,
      description: meta.description,
      version: meta.version ?? "0.0.0",
      enabled: disabledReason === undefined,
      ...(disabledReason === undefined ? {} : { disabledReason }),
      ...(meta.metadata?.coderclaw?.dangerous === undefined ? {} : { dangerous: meta.metadata.coderclaw.dangerous }),
    };
    return { info, dir, source };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { info: { id: folder, name: folder, description: "", version: "0.0.0", enabled: false, disabledReason: reason }, dir, source };
  }
}

/**
 * Load skill folders (each holding a SKILL.md) from `dirs` in order; the first
 * skill found under a name wins. Missing directories are skipped.
 * Requirements are checked against `env` (the node's environment): a missing
 * binary or variable leaves the skill listed with `enabled: false`.
 */
export function loadSkills(dirs: readonly SkillDir[], env: Readonly<Record<string, string | undefined>>): LoadedSkill[] {
  const byName = new Map<string, LoadedSkill>();
  for (const { path, source } of dirs) {
    let entries: string[];
    try {
      entries = readdirSync(path).sort().slice(0, MAX_SKILLS_PER_DIR);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const dir = join(path, entry);
      if (entry.startsWith(".") || !existsSync(join(dir, "SKILL.md"))) continue;
      const skill = loadSkill(dir, source, env);
      if (!byName.has(skill.info.name)) byName.set(skill.info.name, skill);
    }
  }
  return [...byName.values()];
}
