import { html } from "./html.js";

/** A table that scrolls inside its box on a narrow screen; columns marked wide hide there. */
export function Table({ label, columns, wide = [], children }) {
  return html`<div class="scroll"><table aria-label=${label}>
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${wide.includes(c) ? "wide" : undefined}>${c}</th>`)}</tr></thead>
    <tbody>${children}</tbody>
  </table></div>`;
}
