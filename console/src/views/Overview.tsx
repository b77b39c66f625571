// The overview (`#/`): every site with what it holds and costs each month, its agents,
// the saving that pending recommendations offer, and the migrations running now.
//
// What a site holds comes with the site (bytes_stored, dataset_count): every replica
// there, primary or secondary, summed by the control plane.
import { useApi } from "../api";
import { siteLabel, useDatasetNames, useSites } from "../catalogue";
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { averageRate, BytesDone, ObjectsDone } from "../components/JobProgressCells";
import { JobStateBadge, TierBadge } from "../components/labels";
import { formatBytes, formatCount, formatDollars } from "../format";
import { AgentState } from "../gen/ferry/v1/agent_pb";
import { JobState, type Job } from "../gen/ferry/v1/job_pb";
import { RecommendationState } from "../gen/ferry/v1/recommendation_pb";
import { useLoad } from "../hooks";
import { seg } from "../router";

const RECOMMENDATION_LIMIT = 5_000;
const RUNNING = [JobState.QUEUED, JobState.COPYING, JobState.VERIFYING, JobState.SWITCHING];
const GB = 1e9;

export function OverviewView() {
  const api = useApi();
  const sites = useSites();
  const savings = useLoad(async (signal) => {
    let monthly = 0;
    let pending = 0;
    let read = 0;
    let pageToken = "";
    do {
      const res = await api.recommendations.listRecommendations({ pageSize: 1000, pageToken }, { signal });
      for (const r of res.recommendations) {
        if (r.state !== RecommendationState.PENDING || !r.cost) continue;
        pending += 1;
        monthly += Math.max(0, r.cost.monthlyCostNow - r.cost.monthlyCostAfter);
      }
      read += res.recommendations.length;
      pageToken = res.nextPageToken;
    } while (pageToken !== "" && read < RECOMMENDATION_LIMIT);
    return { monthly, pending, truncated: pageToken !== "" };
  }, []);
  const agents = useLoad((signal) => api.agents.listAgents({}, { signal }), []);
  const running = useLoad(async (signal) => {
    const lists = await Promise.all(
      RUNNING.map((state) => api.jobs.listJobs({ state, pageSize: 20 }, { signal })),
    );
    return {
      jobs: lists.flatMap((l) => l.jobs),
      more: lists.some((l) => l.nextPageToken !== ""),
    };
  }, []);

  const agentList = agents.data?.agents ?? [];
  const online = (site: string) => agentList.filter((a) => a.site === site && a.state === AgentState.ALIVE).length;
  const offline = (site: string) => agentList.filter((a) => a.site === site && a.state !== AgentState.ALIVE).length;
  const totalMonthly = (sites.data ?? []).reduce(
    (sum, s) => sum + (Number(s.bytesStored) / GB) * (s.prices?.storagePerGbMonth ?? 0),
    0,
  );

  return (
    <section>
      <h1>Overview</h1>
      <div class="tiles">
        <div class="tile">
          <span class="tile-label">Storage cost per month</span>
          <span class="tile-value">{sites.data ? formatDollars(totalMonthly) : "…"}</span>
        </div>
        <div class="tile">
          <span class="tile-label">Saving available</span>
          <span class="tile-value">{savings.data ? `${formatDollars(savings.data.monthly)}/month` : "…"}</span>
          {savings.data && (
            <span class="tile-note">
              from {formatCount(savings.data.pending)} pending{" "}
              {savings.data.pending === 1 ? "recommendation" : "recommendations"}
              {savings.data.truncated && ` among the ${formatCount(RECOMMENDATION_LIMIT)} newest`}
            </span>
          )}
        </div>
        <div class="tile">
          <span class="tile-label">Migrations running</span>
          <span class="tile-value">
            {running.data ? `${running.data.jobs.length}${running.data.more ? "+" : ""}` : "…"}
          </span>
        </div>
        <div class="tile">
          <span class="tile-label">Agents online</span>
          <span class="tile-value">
            {agents.data
              ? `${agentList.filter((a) => a.state === AgentState.ALIVE).length} of ${agentList.length}`
              : "…"}
          </span>
        </div>
      </div>
      <ErrorNote error={savings.error} context="Recommendations could not be read" />

      <h2>Sites</h2>
      <ErrorNote error={sites.error} context="Sites could not be listed" />
      <ErrorNote error={agents.error} context="Agents could not be listed" />
      {!sites.data && !sites.error && <Loading what="sites" />}
      {sites.data && sites.data.length === 0 && (
        <Empty>
          No site is registered yet: <code>ferry site create NAME --uri URI --tier hot</code>.
        </Empty>
      )}
      {sites.data && sites.data.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Site</th>
              <th scope="col">Tier</th>
              <th scope="col" class="num">
                Datasets
              </th>
              <th scope="col" class="num">
                Bytes stored
              </th>
              <th scope="col" class="num">
                Price per GB-month
              </th>
              <th scope="col" class="num">
                Cost per month
              </th>
              <th scope="col">Agents</th>
            </tr>
          </thead>
          <tbody>
            {sites.data.map((s) => {
              const bytes = Number(s.bytesStored);
              const price = s.prices?.storagePerGbMonth ?? 0;
              return (
                <tr key={s.id}>
                  <td>{s.name}</td>
                  <td>
                    <TierBadge tier={s.tier} />
                  </td>
                  <td class="num">{formatCount(s.datasetCount)}</td>
                  <td class="num">{formatBytes(bytes)}</td>
                  <td class="num">{formatDollars(price)}</td>
                  <td class="num">{formatDollars((bytes / GB) * price)}</td>
                  <td>
                    {agents.data ? (
                      <>
                        <span class={online(s.id) > 0 ? "ok" : "muted"}>{online(s.id)} online</span>
                        {offline(s.id) > 0 && <span class="failed">, {offline(s.id)} offline</span>}
                      </>
                    ) : (
                      "…"
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <p class="help">
        Bytes stored count every replica on the site, primary or secondary (a migration keeps its source as a
        secondary replica unless told to delete it). Cost is bytes × the site's storage price per GB-month.
      </p>

      <h2>Running migrations</h2>
      <ErrorNote error={running.error} context="Migrations could not be listed" />
      {running.data && running.data.jobs.length === 0 && <Empty>No migration is running.</Empty>}
      {running.data && running.data.jobs.length > 0 && (
        <RunningJobs jobs={running.data.jobs} sites={sites.data} />
      )}
      {running.data?.more && (
        <p>
          <a href="#/jobs">All migrations</a>
        </p>
      )}
    </section>
  );
}

function RunningJobs({ jobs, sites }: { jobs: Job[]; sites: ReturnType<typeof useSites>["data"] }) {
  const names = useDatasetNames(jobs.map((j) => j.dataset));
  const now = new Date();
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Dataset</th>
          <th scope="col">From → to</th>
          <th scope="col">State</th>
          <th scope="col">Objects</th>
          <th scope="col">Bytes</th>
          <th scope="col">Average rate</th>
        </tr>
      </thead>
      <tbody>
        {jobs.map((j) => (
          <tr key={j.id}>
            <td>
              <a href={`#/jobs/${seg(j.id)}`}>{names.get(j.dataset) ?? j.dataset}</a>
            </td>
            <td>
              {siteLabel(sites, j.sourceSite)} → {siteLabel(sites, j.destinationSite)}
            </td>
            <td>
              <JobStateBadge state={j.state} />
            </td>
            <td class="progress-cell">
              <ObjectsDone job={j} />
            </td>
            <td class="num">
              <BytesDone job={j} />
            </td>
            <td class="num">{averageRate(j, now)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
