import { useEffect, useRef } from "preact/hooks";
import { createApi, Unauthenticated } from "./api.js";
import { html } from "./html.js";
import { tokenFromLink } from "./login.js";
import { sessionName } from "./who.js";

/** Who `token`'s session is, asked with that token alone: it is not stored while the person decides. */
const whoIs = (token) => createApi(() => token).call("/v1/session");

/**
 * The session a login link in the fragment offers: `{ token, who, current }`, with `current` naming
 * the session the tab holds now (null when it holds none, or one the node refuses). Null when the
 * fragment holds no link or the link opens the session the tab already holds: nothing to ask then.
 *
 * Anyone holding a token of the node can mint a link to their session and send it (login CSRF):
 * whoever opens it must see whose session it is before anything is shown or typed in it.
 */
export async function offerFromLink(currentToken) {
  const token = await tokenFromLink();
  if (token === null || token === currentToken) return null;
  const [who, current] = await Promise.all([
    whoIs(token).catch((err) => {
      throw new Error(`The node refused the session this login link opens: ${err.message}`);
    }),
    currentToken ? whoIs(currentToken).catch((err) => (err instanceof Unauthenticated ? null : Promise.reject(err))) : null,
  ]);
  return { token, who, current };
}

/**
 * Asks before the tab enters the session a link offers, naming it (and the tab's own session, which
 * declining keeps). The declining button has the focus: Enter alone changes nothing.
 */
export function LinkPrompt({ offer, onAccept, onDecline }) {
  const decline = useRef(null);
  useEffect(() => decline.current?.focus(), []);
  const submit = (e) => {
    e.preventDefault();
    onAccept();
  };
  const { who, current } = offer;
  return html`<form class="login" aria-labelledby="link-title" aria-describedby="link-warning" onSubmit=${submit}>
    <h2 id="link-title">${current ? "Switch to another session?" : "Log in with this link?"}</h2>
    <dl class="sessions">
      ${current && html`<dt>This tab's session</dt><dd id="link-current">${sessionName(current)}</dd>`}
      <dt>The link's session</dt><dd id="link-offered">${sessionName(who)}</dd>
    </dl>
    <p id="link-warning">Go on only if you asked for this link yourself. Whoever made it can read everything done in its session.</p>
    <div class="actions">
      <button type="button" ref=${decline} onClick=${onDecline}>${current ? "Keep my session" : "Don't log in"}</button>
      <button type="submit">${current ? "Switch session" : "Continue"}</button>
    </div>
  </form>`;
}
