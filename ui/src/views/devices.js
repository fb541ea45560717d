import { html } from "../html.js";

export function DevicesView() {
  return html`<h2>Devices</h2><p>Devices, their trust, revocation and pairing are not served over HTTP yet: coderclaw devices list, devices revoke and mesh invite on the node.</p>`;
}
