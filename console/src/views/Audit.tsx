// The audit log (`#/audit`, admins): every change and refusal, newest first, filtered
// by principal, resource, method and time as ListAuditEvents allows.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useApi } from "../api";
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { Pager } from "../components/Pager";
import { useFields } from "../fields";
import { formatTime, fromLocalInput } from "../format";
import { usePages } from "../hooks";
import { href, navigate } from "../router";
import { roleName } from "../session";

const PAGE_SIZE = 50;

export function AuditView({ query }: { query: URLSearchParams }) {
  const api = useApi();
  const filters = {
    principal: query.get("principal") ?? "",
    resource: query.get("resource") ?? "",
    method: query.get("method") ?? "",
    since: query.get("since") ?? "",
    until: query.get("until") ?? "",
  };
  const pages = usePages(
    async (pageToken, signal) => {
      const since = fromLocalInput(filters.since);
      const until = fromLocalInput(filters.until);
      const res = await api.admin.listAuditEvents(
        {
          principal: filters.principal,
          resource: filters.resource,
          method: filters.method,
          since: since ? timestampFromDate(since) : undefined,
          until: until ? timestampFromDate(until) : undefined,
          pageSize: PAGE_SIZE,
          pageToken,
        },
        { signal },
      );
      return { items: res.events, next: res.nextPageToken };
    },
    Object.values(filters),
  );
  const form = useFields(filters, query.toString());
  const events = pages.data ?? [];
  const filtered = Object.values(filters).some(Boolean);

  return (
    <section>
      <h1>Audit log</h1>
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          const v = form.values;
          navigate(
            href("/audit", {
              principal: v.principal.trim(),
              resource: v.resource.trim(),
              method: v.method.trim(),
              since: v.since,
              until: v.until,
            }),
          );
        }}
      >
        <div class="field">
          <label for="audit-principal">Principal</label>
          <input id="audit-principal" {...form.bind("principal")} placeholder="token:ci" />
        </div>
        <div class="field">
          <label for="audit-resource">Resource</label>
          <input id="audit-resource" {...form.bind("resource")} placeholder="site:fast" />
        </div>
        <div class="field">
          <label for="audit-method">Method</label>
          <input id="audit-method" {...form.bind("method")} placeholder="ferry.v1.SiteService/CreateSite" />
        </div>
        <div class="field">
          <label for="audit-since">Since (local time)</label>
          <input id="audit-since" type="datetime-local" {...form.bind("since")} />
        </div>
        <div class="field">
          <label for="audit-until">Until (local time)</label>
          <input id="audit-until" type="datetime-local" {...form.bind("until")} />
        </div>
        <div class="actions">
          <button type="submit">Apply filters</button>
          {filtered && <a href="#/audit">Clear filters</a>}
        </div>
      </form>
      <ErrorNote error={pages.error} />
      {pages.loading && !pages.data && <Loading what="the audit log" />}
      {pages.data && events.length === 0 && (
        <Empty>{filtered ? "No record matches these filters." : "Nothing recorded yet."}</Empty>
      )}
      {events.length > 0 && (
        <table aria-busy={pages.loading}>
          <caption class="sr-only">Audit records, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Principal</th>
              <th scope="col">Role</th>
              <th scope="col">Method</th>
              <th scope="col">Resource</th>
              <th scope="col">Summary</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.id}>
                <td>{formatTime(e.time)}</td>
                <td class="mono">{e.principal}</td>
                <td>{roleName(e.role)}</td>
                <td class="mono">{e.method.replace(/^ferry\.v1\./, "")}</td>
                <td class="mono">{e.resource}</td>
                <td>{e.summary}</td>
                <td class={e.outcome === "ok" ? "ok" : "failed"}>{e.outcome}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} label="Audit log" />
    </section>
  );
}
