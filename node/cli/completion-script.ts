import type { Command } from "commander";

/** One command of the tree: its path of names from the root, subcommands and long options. */
interface Node {
  path: string[];
  description: string;
  subcommands: Array<{ name: string; description: string }>;
  options: string[];
}

function walk(cmd: Command, path: string[], out: Node[]): Node[] {
  const subs = cmd.commands.filter((c) => c.name() !== "help");
  out.push({
    path,
    description: cmd.description(),
    subcommands: subs.map((c) => ({ name: c.name(), description: c.description().split("\n")[0]! })),
    options: cmd.options.flatMap((o) => (o.long === undefined ? [] : [o.long])).concat(cmd.parent === null ? [] : ["--help"]),
  });
  for (const c of subs) walk(c, [...path, c.name()], out);
  return out;
}

/** Every command of `root`, the root first. */
export function commandTree(root: Command): Node[] {
  return walk(root, [], []);
}

function bashWords(node: Node): string {
  return [...node.subcommands.map((s) => s.name), ...node.options].join(" ");
}

/**
 * A bash completion script: it follows the words typed so far down the command
 * tree (skipping options and their values) and offers that command's
 * subcommands and options.
 */
export function bashCompletion(root: Command): string {
  const name = root.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, "_")}_complete`;
  const cases = commandTree(root).map((n) => `    "${n.path.map((p) => ` ${p}`).join("")}") words="${bashWords(n)}" ;;`);
  const known = commandTree(root)
    .filter((n) => n.path.length > 0)
    .map((n) => `"${n.path.map((p) => ` ${p}`).join("")}"`)
    .join("|");
  return [
    `# bash completion for ${name}; load with: source <(${name} completion bash)`,
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" path="" w i words=""',
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    '    w="${COMP_WORDS[i]}"',
    '    case "$path $w" in',
    `      ${known}) path="$path $w" ;;`,
    "    esac",
    "  done",
    '  case "$path" in',
    ...cases,
    "  esac",
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    "}",
    `complete -o default -F ${fn} ${name}`,
    "",
  ].join("\n");
}

/** A zsh completion script: zsh runs the bash one through its bashcompinit layer. */
export function zshCompletion(root: Command): string {
  return [`# zsh completion for ${root.name()}; load with: source <(${root.name()} completion zsh)`, "autoload -U +X bashcompinit && bashcompinit", bashCompletion(root).split("\n").slice(1).join("\n")].join("\n");
}

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/**
 * A fish completion script: each subcommand is offered once its parent's path
 * has been typed and none of its siblings has.
 */
export function fishCompletion(root: Command): string {
  const name = root.name();
  const lines = [`# fish completion for ${name}; load with: ${name} completion fish | source`, `complete -c ${name} -f`];
  for (const node of commandTree(root)) {
    const siblings = node.subcommands.map((s) => s.name).join(" ");
    const condition =
      node.path.length === 0
        ? "__fish_use_subcommand"
        : `__fish_seen_subcommand_from ${node.path[node.path.length - 1]}${siblings === "" ? "" : `; and not __fish_seen_subcommand_from ${siblings}`}`;
    for (const s of node.subcommands) lines.push(`complete -c ${name} -n ${fishQuote(condition)} -a ${s.name} -d ${fishQuote(s.description)}`);
    for (const o of node.options) lines.push(`complete -c ${name} -n ${fishQuote(node.path.length === 0 ? "true" : `__fish_seen_subcommand_from ${node.path[node.path.length - 1]}`)} -l ${o.slice(2)}`);
  }
  return lines.join("\n") + "\n";
}
