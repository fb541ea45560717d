// The QR encoder that qrcode-terminal (already a dependency, for the CLI's invites) carries,
// bundled into the page: the dashboard draws invite codes with no network.
import QRCode from "qrcode-terminal/vendor/QRCode/index.js";
import QRErrorCorrectLevel from "qrcode-terminal/vendor/QRCode/QRErrorCorrectLevel.js";
import { html } from "./html.js";

/** `text` as a QR code: one SVG path of dark modules, with the quiet zone the standard asks for. */
export function QrCode({ text, label }) {
  const qr = new QRCode(-1, QRErrorCorrectLevel.L);
  qr.addData(text);
  qr.make();
  const size = qr.getModuleCount();
  let path = "";
  for (let row = 0; row < size; row += 1) for (let col = 0; col < size; col += 1) if (qr.isDark(row, col)) path += `M${col + 4} ${row + 4}h1v1h-1z`;
  return html`<svg class="qr" role="img" aria-label=${label} viewBox=${`0 0 ${size + 8} ${size + 8}`} shape-rendering="crispEdges">
    <rect width="100%" height="100%" fill="#fff" /><path d=${path} fill="#000" />
  </svg>`;
}
