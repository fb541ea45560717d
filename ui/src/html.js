// Tagged templates instead of JSX: no compile step for markup, and Preact escapes every
// interpolated value, so nothing a task or peer sends can become markup.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
