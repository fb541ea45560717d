#!/usr/bin/env node
import "../../src/polyfills.js";
import { runCli } from "./program.js";
import { guardTerminal } from "./terminal-guard.js";

// What the CLI prints is often other devices' words; on a terminal, nothing of it may act on the terminal.
// Not stderr, whose progress bars move the cursor: its error line is made safe where it is written.
guardTerminal(process.stdout);

// A reader that went away (`coderclaw task list | head`) ends the command, as SIGPIPE ends a C program, where an
// unhandled EPIPE printed a stack. (`start` writes to stderr and its log, never to stdout.)
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  process.exit(0);
});

const code = await runCli(process.argv.slice(2));
// The command is done, and what it wrote is flushed before the exit. Not waiting for the event loop to empty:
// a libp2p node leaves debounced timers running after its stop (identify push and the address manager, a second
// each), which kept every command that had started a node in this process alive a second after it ended.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))));
process.exit(code);
