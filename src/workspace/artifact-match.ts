import picomatch from "picomatch";

/**
 * Whether a path (relative to the workspace, POSIX-separated) is one that a
 * task's artifact `patterns` name, dotfiles included. The executor brings back
 * only such files and the submitter takes only such names, both by this one
 * rule: the names are the executor's word.
 */
export function artifactMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.length === 0) return () => false;
  return picomatch(
    patterns.map((p) => p.replace(/^(?:\.\/)+/, "")),
    { dot: true },
  );
}
