import qrcode from "qrcode-terminal";

/** Renders `text` (an invite string) as a QR code for a terminal, using half-block characters. */
export function renderQr(text: string): string {
  let rendered = "";
  qrcode.generate(text, { small: true }, (code) => {
    rendered = code;
  });
  return rendered;
}
