/** Thrown when the node refuses the session token: the page goes back to the login form. */
export class Unauthenticated extends Error {}

/**
 * Calls to the node's API with the session token in a header (never a cookie, so other
 * sites cannot make writes on our behalf). The token is read at each call: what the tab
 * holds now is what is sent.
 */
export function createApi(token) {
  const headers = (extra) => ({ authorization: `Bearer ${token()}`, ...extra });

  async function call(path, { method = "GET", body } = {}) {
    const response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (response.status === 401) throw new Unauthenticated("session expired");
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error?.message ?? `${method} ${path}: ${response.status}`);
    return data;
  }

  /** Follows a server-sent event stream over fetch, since EventSource cannot send the token header. */
  async function follow(path, signal, onEvent) {
    const response = await fetch(path, { headers: headers({ accept: "text/event-stream" }), signal });
    if (response.status === 401) throw new Unauthenticated("session expired");
    if (!response.ok || response.body === null) throw new Error(`stream ${path}: ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length > 0) onEvent(event, JSON.parse(data.join("\n")));
        if (event === "end") return;
      }
    }
  }

  return { call, follow };
}
