import { Argument, Command } from "commander";
import { bashCompletion, fishCompletion, zshCompletion } from "../completion-script.js";
import { EXIT } from "../exit-codes.js";

/** `coderclaw completion bash|zsh|fish`: a completion script generated from the command tree. */
export function completionCommand(setExit: (code: number) => void): Command {
  return new Command("completion")
    .description("print a shell completion script")
    .addArgument(new Argument("<shell>", "the shell").choices(["bash", "zsh", "fish"]))
    .addHelpText("after", "\nExamples:\n  source <(coderclaw completion bash)        # in ~/.bashrc\n  source <(coderclaw completion zsh)         # in ~/.zshrc\n  coderclaw completion fish > ~/.config/fish/completions/coderclaw.fish\n")
    .action((shell: "bash" | "zsh" | "fish", _opts: unknown, cmd: Command) => {
      let root = cmd;
      while (root.parent !== null) root = root.parent;
      const script = shell === "bash" ? bashCompletion(root) : shell === "zsh" ? zshCompletion(root) : fishCompletion(root);
      process.stdout.write(script);
      setExit(EXIT.ok);
    });
}
