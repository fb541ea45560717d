import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../html.js";
import { useSession } from "../session.js";
import { Table } from "../table.js";

const RESULTS = ["", "allowed", "denied", "error"];

function Input({ name, label, type = "text" }) {
  return html`<label for=${`audit-${name}`}>${label}<input id=${`audit-${name}`} name=${name} type=${type} /></label>`;
}

function problemText(p) {
  return `chain ${p.author}: first broken entry ${p.seq === undefined ? "(undecodable)" : `#${p.seq}`} (segment ${p.segment}, index ${p.index}), ${p.kind}: ${p.reason}`;
}

/** Every chain checked (hash, signature, link); a broken chain names its first bad entry. */
function Verify() {
  const { call, fail } = useSession();
  const [report, setReport] = useState(null);
  const verify = () => { setReport(null); call("/v1/audit/verify").then(setReport).catch(fail); };
  useEffect(verify, []);
  return html`<h3>Chain verification</h3>
    <p id="audit-verify" role="status">${report === null ? "verifying..." : report.ok
      ? `${report.authors} chains, ${report.entries} entries: all intact`
      : `${report.authors} chains, ${report.entries} entries: ${report.problems.length} broken, ${report.forks.length} forks`}</p>
    ${report && html`<ul aria-label="Broken chains">${report.problems.map((p) => html`<li class="error" data-author=${p.author}>${problemText(p)}</li>`)}
      ${report.forks.map((f) => html`<li class="error">${`chain ${f.author}: two signed entries #${f.seq} (a fork)`}</li>`)}</ul>`}
    <button type="button" onClick=${verify}>Verify again</button>`;
}

/** Audit entries queried by user, action, result and time range. */
export function AuditView() {
  const { call, fail } = useSession();
  const form = useRef(null);
  const [entries, setEntries] = useState([]);
  const query = async () => {
    const params = new URLSearchParams({ limit: "200" });
    for (const [k, v] of new FormData(form.current)) if (v) params.set(k, k.endsWith("Date") ? new Date(String(v)).toISOString() : String(v));
    setEntries((await call(`/v1/audit?${params}`)).entries);
  };
  useEffect(() => { query().catch(fail); }, []);
  const submit = (e) => { e.preventDefault(); query().catch(fail); };
  return html`<h2>Audit</h2>
    <form class="filters" role="search" ref=${form} onSubmit=${submit}>
      <${Input} name="userId" label="User" /><${Input} name="action" label="Action" />
      <label for="audit-result">Result<select id="audit-result" name="result">${RESULTS.map((r) => html`<option value=${r}>${r || "any"}</option>`)}</select></label>
      <${Input} name="startDate" label="From" type="datetime-local" /><${Input} name="endDate" label="To" type="datetime-local" />
      <button type="submit">Query</button>
    </form>
    <${Table} label="Audit entries" columns=${["time", "user", "action", "result", "reason"]}>
      ${entries.map((e) => html`<tr><td>${e.timestamp ?? ""}</td><td>${e.userId ?? ""}</td><td>${e.action ?? ""}</td><td>${e.result ?? ""}</td><td>${e.reason ?? ""}</td></tr>`)}
    <//>
    <${Verify} />`;
}
