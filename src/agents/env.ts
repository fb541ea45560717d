/**
 * Variables every agent process gets from the node's environment when the node
 * has them: enough for tools to find programs, write temp files, pick a locale
 * and a terminal, and nothing that usually carries a secret.
 */
export const ENV_ALLOWLIST: readonly string[] = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "LC_ALL",
  "LC_CTYPE",
  "LC_MESSAGES",
  "TERM",
  "COLORTERM",
  "NO_COLOR",
  "TMPDIR",
  "TMP",
  "TEMP",
  "TZ",
];

/** What an agent's config adds to the scrubbed environment. */
export interface EnvGrant {
  /** Names passed through from the node's environment when set there. */
  pass?: readonly string[];
  /** Variables set to these values, overriding anything passed through. */
  set?: Readonly<Record<string, string>>;
}

/**
 * Build an agent's environment from the node's: the allowlist plus what the
 * agent's config names. Secrets in the node's environment stay out unless an
 * operator names them for that agent.
 */
export function scrubEnv(source: Readonly<Record<string, string | undefined>>, grant: EnvGrant = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...ENV_ALLOWLIST, ...(grant.pass ?? [])]) {
    const value = source[name];
    if (value !== undefined) env[name] = value;
  }
  for (const [name, value] of Object.entries(grant.set ?? {})) env[name] = value;
  return env;
}
