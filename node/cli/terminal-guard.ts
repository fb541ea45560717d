/**
 * Sequences a terminal acts on, and the control characters it interprets:
 * CSI (cursor moves, clearing, and colours), OSC (window titles, the
 * clipboard, hyperlinks), DCS/SOS/PM/APC strings, each also in its 8-bit C1
 * form, other two-byte escapes, and C0 and C1 controls. What the CLI prints is often another device's words
 * (a task's description, output or error, a member's name, a workflow's
 * step): printed raw to a terminal, a member could clear the screen, rewrite
 * a line with `\r`, retitle the window or write the user's clipboard.
 */
const ACTED_ON = /\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9d[^\x07\x9c]*[\x07\x9c]?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|[\x90\x98\x9e\x9f][^\x9c]*\x9c?|\x1b[ -~]?|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** A colour or style (SGR), the one kind of sequence kept: the CLI's own colours, and an agent's coloured output. */
const SGR = /^\x1b\[[0-9;:]*m$/;

/** `text` with what a terminal would act on removed, colours, newlines and tabs kept. */
export function terminalSafe(text: string): string {
  return text.replace(ACTED_ON, (sequence) => (SGR.test(sequence) ? sequence : ""));
}

/**
 * Makes everything written to `stream` {@link terminalSafe}, when it is a
 * terminal. Output to a pipe or a file stays byte for byte what it was (a
 * patch, JSON, an agent's output saved by the user).
 */
export function guardTerminal(stream: NodeJS.WriteStream): void {
  if (stream.isTTY !== true) return;
  const write = stream.write.bind(stream) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
  stream.write = (chunk: string | Uint8Array, ...rest: unknown[]) =>
    write(terminalSafe(typeof chunk === "string" ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("utf8")), ...rest);
}
