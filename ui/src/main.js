// The CoderClaw dashboard: Preact components over the node's HTTP API.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { createApi, Unauthenticated } from "./api.js";
import { html } from "./html.js";
import { LinkPrompt, offerFromLink } from "./link-prompt.js";
import { Login } from "./login.js";
import { Session } from "./session.js";
import { ApprovalsView } from "./views/approvals.js";
import { AuditView } from "./views/audit.js";
import { DevicesView } from "./views/devices.js";
import { MeshView } from "./views/mesh.js";
import { TaskView } from "./views/task.js";
import { QueueView, TasksView } from "./views/tasks.js";
import { WorkflowsView } from "./views/workflows.js";
import { useWho, WhoAmI } from "./who.js";

const TOKEN_KEY = "coderclaw.token";
const VIEWS = { mesh: MeshView, tasks: TasksView, queue: QueueView, approvals: ApprovalsView, audit: AuditView, workflows: WorkflowsView, devices: DevicesView };

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

/** Until the node says what the session may do, no write button shows. */
const NOTHING = { submit: false, cancel: false, approve: false, admin: false };

function Dashboard({ route, session, may }) {
  const [error, setError] = useState("");
  const [name, arg] = route.split("/");
  const View = name === "task" ? TaskView : VIEWS[name] ?? TasksView;
  const fail = (err) => {
    if (err instanceof Unauthenticated) session.expired();
    else if (err?.name !== "AbortError") setError(err.message);
  };
  const value = useMemo(() => ({ ...session, may, fail }), [session, may]);
  useEffect(() => setError(""), [route]);
  return html`<${Session.Provider} value=${value}>
    <nav role="tablist" aria-label="Views">
      ${Object.keys(VIEWS).map((view) => html`<button type="button" role="tab" aria-selected=${String(view === name)} onClick=${() => (location.hash = view)}>${view[0].toUpperCase() + view.slice(1)}</button>`)}
    </nav>
    <p id="error" role="alert" class="error">${error}</p>
    <section role="tabpanel" aria-label=${name}><${View} key=${route} id=${arg} /></section>
  <//>`;
}

function App() {
  const hash = useHash();
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY));
  const [message, setMessage] = useState("");
  const [linking, setLinking] = useState(false);
  // The session a login link offers, held in memory only until the person says whether to enter it.
  const [offer, setOffer] = useState(null);
  const keep = (value) => {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    setToken(value);
  };
  // A login link opened in a tab that already shows the dashboard changes only the fragment; the tab enters
  // the link's session only once the person has seen whose it is and said so (LinkPrompt).
  useEffect(() => {
    // A notice about a link, shown over the dashboard, goes once the person moves on.
    if (!hash.startsWith("#login=")) {
      if (sessionStorage.getItem(TOKEN_KEY)) setMessage("");
      return;
    }
    setLinking(true);
    // A link that does not work (used, expired, made up) leaves the tab's own session as it was: anyone could
    // otherwise log a person out by sending them a spent link.
    offerFromLink(sessionStorage.getItem(TOKEN_KEY))
      .then(setOffer)
      .catch((err) => setMessage(err.message))
      .finally(() => setLinking(false));
  }, [hash]);
  const session = useMemo(() => token && {
    ...createApi(() => sessionStorage.getItem(TOKEN_KEY)),
    expired: () => { keep(null); setMessage("Your session expired or was refused; log in again."); },
  }, [token]);
  const { who, error } = useWho(session);
  const logout = () => { keep(null); setOffer(null); setMessage(""); };
  const accept = () => { keep(offer.token); setOffer(null); setMessage(""); };
  const decline = () => {
    if (!offer.current) setMessage("You did not log in with the link.");
    setOffer(null);
  };
  const route = hash.startsWith("#login=") ? "tasks" : hash.slice(1) || "tasks";
  const content = offer
    ? html`<${LinkPrompt} offer=${offer} onAccept=${accept} onDecline=${decline} />`
    : session
      ? html`<${Dashboard} key=${token} route=${route} session=${session} may=${who?.may ?? NOTHING} />`
      : html`<${Login} message=${message} onToken=${(value) => { setMessage(""); keep(value); }} />`;
  return html`<header><h1>CoderClaw</h1>${session && html`<${WhoAmI} who=${who} error=${error} /><button type="button" onClick=${logout}>Log out</button>`}</header>
    <main aria-live="polite">${session && !offer && message ? html`<p id="link-notice" role="alert" class="error">${message}</p>` : null}${linking ? null : content}</main>`;
}

render(html`<${App} />`, document.getElementById("app"));
