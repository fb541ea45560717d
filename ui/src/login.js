import { useEffect, useRef } from "preact/hooks";
import { html } from "./html.js";

/** The token form, with why the last session ended when it did. */
export function Login({ message, onToken }) {
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []);
  const submit = (e) => {
    e.preventDefault();
    onToken(input.current.value.trim());
  };
  return html`<form class="login" aria-labelledby="login-title" onSubmit=${submit}>
    <h2 id="login-title">Log in</h2>
    ${message && html`<p role="alert" class="error">${message}</p>`}
    <label for="token">Session token (coderclaw session create, or open the link from coderclaw ui)
      <input id="token" name="token" type="password" autocomplete="off" required ref=${input} />
    </label>
    <button type="submit">Log in</button>
  </form>`;
}

/** Exchanges a one-time code from the URL fragment for its session token (null when there is none). */
export async function tokenFromLink() {
  const match = /^#login=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, "", location.pathname);
  const response = await fetch("/ui/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code: match[1] }) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message ?? "This login link does not work.");
  return data.token;
}
