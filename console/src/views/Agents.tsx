// Agents (`#/agents`): each registered agent, its site, version and concurrency, and
// how long ago it last sent a heartbeat, counting up live; "Refresh" asks again.
import { useApi } from "../api";
import { siteLabel, useSites } from "../catalogue";
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { enumLabel, formatAgo, formatTime } from "../format";
import { AgentState } from "../gen/ferry/v1/agent_pb";
import { useLoad, useNow } from "../hooks";

export function AgentsView() {
  const api = useApi();
  const sites = useSites();
  const agents = useLoad((signal) => api.agents.listAgents({}, { signal }), []);
  const now = useNow();
  const list = [...(agents.data?.agents ?? [])].sort(
    (a, b) => siteLabel(sites.data, a.site).localeCompare(siteLabel(sites.data, b.site)) || a.hostname.localeCompare(b.hostname),
  );
  return (
    <section>
      <div class="title-row">
        <h1>Agents</h1>
        <button type="button" onClick={agents.reload} disabled={agents.loading}>
          Refresh
        </button>
      </div>
      <ErrorNote error={agents.error} />
      {!agents.data && !agents.error && <Loading what="agents" />}
      {agents.data && list.length === 0 && <Empty>No agent has registered.</Empty>}
      {list.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Site</th>
              <th scope="col">Host</th>
              <th scope="col">State</th>
              <th scope="col">Version</th>
              <th scope="col" class="num">
                Concurrency
              </th>
              <th scope="col" class="num">
                Jobs
              </th>
              <th scope="col">Last heartbeat</th>
              <th scope="col">Registered</th>
            </tr>
          </thead>
          <tbody>
            {list.map((a) => (
              <tr key={a.id}>
                <td>{siteLabel(sites.data, a.site)}</td>
                <td>{a.hostname}</td>
                <td>
                  <span class={`badge agent-${enumLabel(AgentState, a.state)}`}>{enumLabel(AgentState, a.state)}</span>
                </td>
                <td class="mono">{a.version}</td>
                <td class="num">{a.concurrency}</td>
                <td class="num">{a.jobs.length}</td>
                <td title={formatTime(a.lastHeartbeatTime)}>{formatAgo(a.lastHeartbeatTime, now)}</td>
                <td>{formatTime(a.registerTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
