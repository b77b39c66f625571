// One dataset (`#/datasets/<name>`): where its bytes are (replicas), how it is read
// (hourly reads and bytes over 7 or 30 days), the policy that governs it and the
// advice on where it should live.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import { useApi } from "../api";
import { siteLabel, useSites } from "../catalogue";
import { DatasetAccessChart } from "../components/DatasetAccessChart";
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { TierBadge } from "../components/labels";
import { durationSeconds, enumLabel, formatBytes, formatCount, formatSeconds, formatTime } from "../format";
import { ReplicaRole, ReplicaState } from "../gen/ferry/v1/dataset_pb";
import { useLoad } from "../hooks";
import { href } from "../router";
import { useSession } from "../session";
import { Recommendations } from "./Recommendations";

const DAY_MS = 86_400_000;

export function DatasetView({ name }: { name: string }) {
  const api = useApi();
  const session = useSession();
  const sites = useSites();
  const loaded = useLoad((signal) => api.datasets.getDataset({ dataset: name }, { signal }), [name]);
  const d = loaded.data?.dataset;

  if (!d) {
    return (
      <section>
        <p class="crumbs">
          <a href="#/datasets">Datasets</a> /
        </p>
        <h1>{name}</h1>
        {loaded.error ? <ErrorNote error={loaded.error} /> : <Loading what="the dataset" />}
      </section>
    );
  }
  const policy = loaded.data?.effectivePolicy;
  return (
    <section>
      <p class="crumbs">
        <a href="#/datasets">Datasets</a> /
      </p>
      <div class="title-row">
        <h1>{d.name}</h1>
        <div class="actions">
          <a class="button" href={href("/jobs", { dataset: d.name })}>
            Its migrations
          </a>
          {session.can("operate") && (
            <a class="button primary" href={href("/jobs/new", { dataset: d.name })}>
              Plan a migration
            </a>
          )}
        </div>
      </div>
      <dl class="details">
        <dt>Primary site</dt>
        <dd>
          {siteLabel(sites.data, d.site)}: <span class="mono">{d.path}</span>
        </dd>
        <dt>Tier</dt>
        <dd>
          <TierBadge tier={d.currentTier} />
        </dd>
        <dt>Size</dt>
        <dd>
          {formatBytes(d.sizeBytes)} in {formatCount(d.objectCount)} objects
        </dd>
        <dt>Owner</dt>
        <dd>{d.owner || "—"}</dd>
        <dt>Labels</dt>
        <dd>
          {Object.entries(d.labels).length === 0
            ? "—"
            : Object.entries(d.labels).map(([k, v]) => (
                <span key={k} class="label">
                  {k}={v}
                </span>
              ))}
        </dd>
        <dt>Latency objective</dt>
        <dd>{d.latencySloMs ? `${d.latencySloMs} ms` : "none"}</dd>
        <dt>Governing policy</dt>
        <dd>{policy ? policy.name : "none matches its labels"}</dd>
        <dt>Last access</dt>
        <dd>{formatTime(d.lastAccessTime)}</dd>
      </dl>

      <h2>Replicas</h2>
      {loaded.data!.replicas.length === 0 ? (
        <Empty>No replica recorded.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Site</th>
              <th scope="col">Path</th>
              <th scope="col">Role</th>
              <th scope="col">State</th>
              <th scope="col">Verified</th>
              <th scope="col">Last sync</th>
              <th scope="col">Lag</th>
            </tr>
          </thead>
          <tbody>
            {loaded.data!.replicas.map((r) => (
              <tr key={`${r.site}/${r.path}`}>
                <td>{siteLabel(sites.data, r.site)}</td>
                <td class="mono">{r.path}</td>
                <td>{enumLabel(ReplicaRole, r.role)}</td>
                <td>{enumLabel(ReplicaState, r.state)}</td>
                <td>{formatTime(r.verifyTime)}</td>
                <td>{formatTime(r.syncTime)}</td>
                <td>{r.lag ? formatSeconds(durationSeconds(r.lag) ?? -1) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <AccessSection dataset={d.id} />
      <Recommendations dataset={d.id} sites={sites.data} />
    </section>
  );
}

function AccessSection({ dataset }: { dataset: string }) {
  const api = useApi();
  const [days, setDays] = useState(7);
  const stats = useLoad(
    async (signal) => {
      const end = new Date();
      const start = new Date(end.getTime() - days * DAY_MS);
      const res = await api.access.getAccessStats(
        { dataset, startTime: timestampFromDate(start), endTime: timestampFromDate(end) },
        { signal },
      );
      return { start, end, hours: res.hours };
    },
    [dataset, days],
  );
  return (
    <>
      <div class="title-row">
        <h2>Access</h2>
        <div class="segmented" role="group" aria-label="Period">
          {[7, 30].map((n) => (
            <button key={n} type="button" aria-pressed={days === n} onClick={() => setDays(n)}>
              Last {n} days
            </button>
          ))}
        </div>
      </div>
      <ErrorNote error={stats.error} context="Access statistics could not be read" />
      {stats.data ? (
        <DatasetAccessChart hours={stats.data.hours} start={stats.data.start} end={stats.data.end} />
      ) : (
        !stats.error && <Loading what="access statistics" />
      )}
    </>
  );
}
