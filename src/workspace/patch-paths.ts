/**
 * The paths a git patch names, read from its headers as `git apply` reads
 * them. A task's result patch comes from its executor, another member: before
 * it is applied, the submitter checks what it would read and write, because
 * `git apply` checks less than a result may do (a copy's source is read
 * wherever it points, outside the repository and in `.git` too).
 */
export interface PatchPaths {
  /** Every path the patch reads or writes, relative to the repository's top level. */
  paths: string[];
  /** The sources of `copy from` headers: a result patch never has any (its diff finds renames only). */
  copies: string[];
}

const ESCAPES: Readonly<Record<string, string>> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", '"': '"', "\\": "\\" };

/** A path as git writes it in a header: C-quoted when it holds special bytes (octal escapes are UTF-8 bytes). */
function unquote(text: string): string {
  if (!text.startsWith('"') || !text.endsWith('"') || text.length < 2) return text;
  const bytes: number[] = [];
  const body = text.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== "\\") {
      bytes.push(...Buffer.from(c, "utf8"));
      continue;
    }
    const next = body[++i] ?? "";
    if (/[0-3]/.test(next) && /^[0-7]{2}$/.test(body.slice(i + 1, i + 3))) {
      bytes.push(parseInt(body.slice(i, i + 3), 8));
      i += 2;
    } else bytes.push(...Buffer.from(ESCAPES[next] ?? next, "utf8"));
  }
  return Buffer.from(bytes).toString("utf8");
}

/** A name of a ---/+++ line without its first component (`a/`, `b/`, or any, as `git apply -p1` strips it); undefined for /dev/null. */
function sidePath(text: string): string | undefined {
  // Git ends a name holding a space with a tab in ---/+++ lines.
  const name = unquote(text.replace(/\t$/, ""));
  if (name === "/dev/null") return undefined;
  const slash = name.indexOf("/");
  return slash < 0 ? name : name.slice(slash + 1);
}

/** The one path of `diff --git a/P b/P` (the same on both sides: what git itself takes when no other header names it). */
function gitHeaderPath(rest: string): string | undefined {
  if (rest.startsWith('"')) {
    // The closing quote: the first one no backslash escapes.
    const close = /^"(?:[^"\\]|\\.)*"/.exec(rest);
    return close === null ? undefined : sidePath(close[0]);
  }
  const half = (rest.length - 1) / 2;
  if (!Number.isInteger(half) || rest[half] !== " " || rest.slice(2, half) !== rest.slice(half + 3)) return undefined;
  return sidePath(rest.slice(0, half));
}

const HEADERS = ["diff --git ", "rename from ", "rename to ", "copy from ", "copy to ", "--- ", "+++ "] as const;
const HUNK = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/;

/**
 * The paths `patch` names in its headers. A hunk's lines are skipped by the
 * counts its `@@` line gives, as git reads them: a removed line "-- x" is
 * "--- x" in a hunk, and a plain (not git) patch's next file starts with
 * "--- " right after the last hunk of the one before.
 */
export function patchPaths(patch: Uint8Array): PatchPaths {
  const bytes = Buffer.from(patch.buffer, patch.byteOffset, patch.byteLength);
  const paths = new Set<string>();
  const copies: string[] = [];
  let oldLeft = 0;
  let newLeft = 0;
  for (let at = 0; at < bytes.byteLength; ) {
    const end = bytes.indexOf(0x0a, at);
    const stop = end < 0 ? bytes.byteLength : end;
    const line = at;
    at = stop + 1;
    if (oldLeft > 0 || newLeft > 0) {
      const first = bytes[line];
      // Context (an empty line is one too, for git), removed, added, "\ No newline at end of file".
      if (first === 0x20 || line === stop) {
        oldLeft--;
        newLeft--;
        continue;
      }
      if (first === 0x2d || first === 0x2b) {
        if (first === 0x2d) oldLeft--;
        else newLeft--;
        continue;
      }
      if (first === 0x5c) continue;
      // A line no hunk has: git calls the patch corrupt; what follows is read as headers.
      oldLeft = newLeft = 0;
    }
    // Only a line that may be a header is decoded: a patch can be far larger than a string can hold.
    const head = bytes.toString("latin1", line, Math.min(stop, line + 12));
    if (head.startsWith("@@ ")) {
      const counts = HUNK.exec(bytes.toString("latin1", line, Math.min(stop, line + 64)));
      oldLeft = counts === null ? 0 : Number(counts[1] ?? 1);
      newLeft = counts === null ? 0 : Number(counts[2] ?? 1);
      continue;
    }
    const header = HEADERS.find((h) => head.startsWith(h));
    if (header === undefined) continue;
    const rest = bytes.toString("utf8", line + header.length, stop).replace(/\r$/, "");
    const path = header === "diff --git " ? gitHeaderPath(rest) : header === "--- " || header === "+++ " ? sidePath(rest) : unquote(rest);
    if (path !== undefined) paths.add(path);
    if (header === "copy from ") copies.push(unquote(rest));
  }
  return { paths: [...paths], copies };
}
