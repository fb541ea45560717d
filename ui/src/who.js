import { useEffect, useState } from "preact/hooks";
import { Unauthenticated } from "./api.js";
import { html } from "./html.js";

/** A session as the page names it: its user, its roles, and whether it may only read. */
export function sessionName(who) {
  return `${who.userId}: ${who.roles.join(", ") || "no role"}${who.readOnly ? " (read-only)" : ""}`;
}

/**
 * Who `session` is, from `GET /v1/session`: `{ who }` once the node has said, `{ error }` when it
 * could not, `{}` until then. A refused session ends through `session.expired`.
 */
export function useWho(session) {
  const [state, setState] = useState({ session: null });
  useEffect(() => {
    if (!session) return undefined;
    // An answer that arrives after the tab changed session names the old one: it is dropped.
    let current = true;
    session.call("/v1/session")
      .then((who) => current && setState({ session, who }))
      .catch((err) => {
        if (!current) return;
        if (err instanceof Unauthenticated) session.expired();
        else setState({ session, error: err.message });
      });
    return () => { current = false; };
  }, [session]);
  // Until the answer for this session is in, the last one (another session's) is not shown, not even for a frame.
  return state.session === session ? state : {};
}

/** The header's line naming the tab's session, so whoever uses the page sees whose it is. */
export function WhoAmI({ who, error }) {
  if (error) return html`<p class="who error" role="alert">Cannot say whose session this is: ${error}</p>`;
  return html`<p class="who" aria-live="polite">${who && html`Logged in as <span id="whoami">${sessionName(who)}</span>`}</p>`;
}
