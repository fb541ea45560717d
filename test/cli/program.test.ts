import { describe, expect, it } from "vitest";
import { buildProgram, COMMAND_MODULES, commandNameOf } from "../../node/cli/program.js";

const names = (commands: ReadonlyArray<{ name(): string }>): string[] => commands.map((c) => c.name());

describe("the CLI loads only the module of the command it runs", () => {
  it("each module defines exactly the names it is listed under, and together they are every command, in help's order", async () => {
    const setExit = (): void => undefined;
    for (const m of COMMAND_MODULES) expect(names(await m.load(setExit))).toEqual(m.names);
    const all = await buildProgram(setExit);
    expect(names(all.commands)).toEqual([...COMMAND_MODULES.flatMap((m) => m.names), "version"]);
  });

  it("finds the command past the root options and their values", () => {
    expect(commandNameOf(["--home", "/h", "--server", "http://x", "--token", "t", "task", "list", "--json"])).toBe("task");
    expect(commandNameOf(["--home=/h", "peers"])).toBe("peers");
    expect(commandNameOf(["--help"])).toBeUndefined();
    expect(commandNameOf([])).toBeUndefined();
    // A root option's value that looks like a command is not one.
    expect(commandNameOf(["--home", "task", "status"])).toBe("status");
  });

  it("builds the command asked for alone; help, completion and a name no module has get every command", async () => {
    const setExit = (): void => undefined;
    expect(names((await buildProgram(setExit, ["--home", "/h", "doctor", "--json"])).commands)).toEqual(["id", "peers", "ping", "doctor", "mesh", "devices", "version"]);
    expect(names((await buildProgram(setExit, ["version"])).commands)).toEqual(["version"]);
    const every = names((await buildProgram(setExit)).commands);
    for (const argv of [["--help"], ["completion", "bash"], ["tsak", "list"], []]) expect(names((await buildProgram(setExit, argv)).commands)).toEqual(every);
  });
});
