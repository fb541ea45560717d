/**
 * Where a reference may not stand in a shell step's input, and what to write
 * instead (`ref` is the reference as written). A value is filled in as one word
 * of its own; in each of these places the author's own quoting or syntax would
 * decide what it means instead, or another language would run it.
 */
const MISPLACED = {
  single: (ref: string) => `inside single quotes, where it would not be one word of this command (text there is taken as it is, or is a program for sh -c, awk, sed...): write it outside the quotes, as a word of its own ('text '${ref}), or pass it to such a program as an argument (sh -c 'tool "$1"' sh ${ref})`,
  double: (ref: string) => `inside double quotes: it is one quoted word already, so write it outside the quotes ("text "${ref})`,
  dollarQuote: (ref: string) => `inside $'...': write it outside the quotes, as a word of its own ($'text\\n'${ref})`,
  backslash: () => "after a backslash, which would take the value's own quoting apart: remove the backslash",
  backquote: () => "inside backquotes: use $(...) instead",
  arithmetic: (ref: string) => `inside an arithmetic expression, which evaluates it (bash runs the commands an expression names): assign it to a variable first (n=${ref}), check it is a number, then compute`,
  parameter: (ref: string) => `inside \${...}: assign it to a variable first (v=${ref}) and use "$v" there`,
  hereDocument: (ref: string) => `inside a here-document, where it would not be one word: pipe it in instead (printf '%s\\n' ${ref} | command)`,
  delimiter: () => "as a here-document's delimiter",
} as const;

/** Why a reference cannot stand where it is: a key of {@link MISPLACED}. */
type Misplaced = keyof typeof MISPLACED;

/** `value` as one POSIX shell word: in single quotes, inside which nothing is special but `'`, written `'\''`. */
export function shellWord(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

type Frame =
  /** Unquoted text: the command line, or a `$(...)` inside quotes or `${...}`, whose `)` ends it at `depth` 0. */
  | { kind: "command"; depth: number }
  /** `$((...))` or bash's `((...))`, which end at a `)` at `depth` 0. */
  | { kind: "arithmetic"; depth: number }
  | { kind: "single" | "dollarQuote" | "double" | "backquote" | "parameter" | "comment" };

/** A here-document's delimiter, read or being read, and whether its lines lose their leading tabs (`<<-`). */
interface HereDocument {
  delimiter: string;
  stripTabs: boolean;
}

/** A here-document whose body is being read, with the text of its current line. */
interface HereDocumentBody extends HereDocument {
  line: string;
}

/** Characters after which a `#` starts a comment and `((` an arithmetic command. */
const WORD_BREAK = new Set(["", " ", "\t", "\n", ";", "&", "|", "(", ")", "<", ">"]);

/**
 * Follows a POSIX shell command line as its author wrote it, to tell whether a
 * word of its own could start at a given point. It only decides which
 * references are refused: it never makes a value safe, since a filled value
 * stands only in an assignment the filler writes (see `fillStepInput`), so a
 * place it misjudges can give a wrong command, never a value read as syntax.
 */
export class ShellScanner {
  readonly #frames: Frame[] = [{ kind: "command", depth: 0 }];
  #previous = "";
  #escaped = false;
  /** The delimiter after a `<<`, while it is read. */
  #delimiter: (HereDocument & { quote: string | undefined; escaped: boolean; started: boolean }) | undefined;
  /** Here-documents whose bodies start at the next line. */
  readonly #pending: HereDocument[] = [];
  /** The here-document whose body is being read. */
  #body: HereDocumentBody | undefined;

  /** Read the reference `ref` at this point: why it cannot stand here, and what to write instead; undefined when it can. */
  reference(ref: string): string | undefined {
    const why = this.#where();
    // The value is part of a word: a `#` right after it starts no comment.
    this.#previous = "$";
    return why === undefined ? undefined : MISPLACED[why](ref);
  }

  #where(): Misplaced | undefined {
    if (this.#body !== undefined) return "hereDocument";
    if (this.#delimiter !== undefined) return "delimiter";
    if (this.#escaped) return "backslash";
    const top = this.#frames[this.#frames.length - 1]!;
    // A comment is never run: nothing to refuse there.
    return top.kind === "command" || top.kind === "comment" ? undefined : top.kind;
  }

  /** Read the author's `text`. */
  text(text: string): void {
    for (let i = 0; i < text.length; i++) i += this.#char(text, i);
  }

  /** Read `text[i]`; returns how many characters after it were read with it. */
  #char(text: string, i: number): number {
    const c = text[i]!;
    if (this.#body !== undefined) {
      this.#bodyChar(c);
      return 0;
    }
    if (this.#delimiter !== undefined && this.#delimiterChar(c)) return 0;
    const previous = this.#previous;
    this.#previous = c;
    if (this.#escaped) {
      // A line continued with a backslash does not start a word.
      this.#previous = "\\";
      this.#escaped = false;
      return 0;
    }
    const top = this.#frames[this.#frames.length - 1]!;
    switch (top.kind) {
      case "single":
        if (c === "'") this.#frames.pop();
        return 0;
      case "dollarQuote":
        if (c === "\\") this.#escaped = true;
        else if (c === "'") this.#frames.pop();
        return 0;
      case "backquote":
        if (c === "\\") this.#escaped = true;
        else if (c === "`") this.#frames.pop();
        return 0;
      case "comment":
        if (c === "\n") {
          this.#frames.pop();
          this.#newline();
        }
        return 0;
      case "double":
        if (c === "\\") this.#escaped = true;
        else if (c === '"') this.#frames.pop();
        else if (c === "`") this.#frames.push({ kind: "backquote" });
        else if (c === "$") return this.#dollar(text, i, true);
        return 0;
      case "parameter":
        if (c === "}") {
          this.#frames.pop();
          return 0;
        }
        return this.#quote(text, i);
      case "arithmetic":
        if (c === "(") top.depth++;
        else if (c !== ")") return this.#quote(text, i);
        else if (top.depth > 0) top.depth--;
        else {
          this.#frames.pop();
          return text[i + 1] === ")" ? 1 : 0;
        }
        return 0;
      case "command":
        if (c === "#" && WORD_BREAK.has(previous)) this.#frames.push({ kind: "comment" });
        else if (c === "\n") this.#newline();
        else if (c === "(" && text[i + 1] === "(" && WORD_BREAK.has(previous)) {
          this.#frames.push({ kind: "arithmetic", depth: 0 });
          return 1;
        } else if (c === "(") top.depth++;
        else if (c === ")") {
          if (top.depth > 0) top.depth--;
          else if (this.#frames.length > 1) this.#frames.pop();
        } else if (c === "<" && text[i + 1] === "<") {
          if (text[i + 2] === "<") return 2;
          const stripTabs = text[i + 2] === "-";
          this.#delimiter = { delimiter: "", stripTabs, quote: undefined, escaped: false, started: false };
          return stripTabs ? 2 : 1;
        } else return this.#quote(text, i);
        return 0;
    }
  }

  /** Quotes, escapes and expansions, which open the same way in unquoted text, `${...}` and `$((...))`. */
  #quote(text: string, i: number): number {
    const c = text[i];
    if (c === "\\") this.#escaped = true;
    else if (c === "'") this.#frames.push({ kind: "single" });
    else if (c === '"') this.#frames.push({ kind: "double" });
    else if (c === "`") this.#frames.push({ kind: "backquote" });
    else if (c === "$") return this.#dollar(text, i, false);
    return 0;
  }

  /** A `$` at `text[i]`: `$((`, `$(`, `${`, and outside double quotes `$'` and `$"`, open what they open. */
  #dollar(text: string, i: number, quoted: boolean): number {
    const next = text[i + 1];
    const top = this.#frames[this.#frames.length - 1]!;
    if (next === "(" && text[i + 2] === "(") {
      this.#frames.push({ kind: "arithmetic", depth: 0 });
      return 2;
    }
    if (next === "(") {
      // Inside unquoted text, `$(` opens more unquoted text: its `)` is counted as any other's.
      if (top.kind === "command") top.depth++;
      else this.#frames.push({ kind: "command", depth: 0 });
      return 1;
    }
    if (next === "{") this.#frames.push({ kind: "parameter" });
    else if (next === "'" && !quoted) this.#frames.push({ kind: "dollarQuote" });
    else if (next === '"' && !quoted) this.#frames.push({ kind: "double" });
    else return 0;
    return 1;
  }

  /** A character of a delimiter after `<<`; false when it ends the delimiter and is read as any other. */
  #delimiterChar(c: string): boolean {
    const d = this.#delimiter!;
    if (d.escaped) d.escaped = false;
    else if (d.quote !== undefined) {
      if (c === d.quote) {
        d.quote = undefined;
        return true;
      }
      if (c === "\\" && d.quote === '"') {
        d.escaped = true;
        return true;
      }
    } else if (c === " " || c === "\t") {
      if (!d.started) return true;
      this.#endDelimiter();
      return false;
    } else if (WORD_BREAK.has(c)) {
      this.#endDelimiter();
      return false;
    } else if (c === "\\") {
      d.started = d.escaped = true;
      return true;
    } else if (c === "'" || c === '"') {
      d.started = true;
      d.quote = c;
      return true;
    }
    d.started = true;
    d.delimiter += c;
    return true;
  }

  #endDelimiter(): void {
    const { delimiter, stripTabs } = this.#delimiter!;
    this.#pending.push({ delimiter, stripTabs });
    this.#delimiter = undefined;
  }

  /** A character of a here-document's body: a line that is its delimiter ends it, and the next one's body starts. */
  #bodyChar(c: string): void {
    const body = this.#body!;
    if (c !== "\n") {
      body.line += c;
      return;
    }
    const line = body.stripTabs ? body.line.replace(/^\t+/, "") : body.line;
    if (line === body.delimiter) this.#body = this.#nextBody();
    else body.line = "";
  }

  /** An unquoted newline: the here-documents of the line just ended start. */
  #newline(): void {
    this.#previous = "\n";
    this.#body = this.#nextBody();
  }

  #nextBody(): HereDocumentBody | undefined {
    const next = this.#pending.shift();
    return next === undefined ? undefined : { ...next, line: "" };
  }
}
