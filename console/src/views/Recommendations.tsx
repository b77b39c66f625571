// A dataset's placement advice: every recorded recommendation, newest first, with all
// its reasons and costs; "Recommend now" computes a fresh one. Operators approve a
// pending one (which plans the migration, linked here) or reject it with a reason.
import { useState } from "preact/hooks";
import { useApi } from "../api";
import { siteLabel } from "../catalogue";
import { Empty, ErrorNote } from "../components/feedback";
import { TierBadge } from "../components/labels";
import { Pager } from "../components/Pager";
import { enumLabel, formatDollars, formatTime } from "../format";
import type { Site } from "../gen/ferry/v1/site_pb";
import { RecommendationState, type Recommendation } from "../gen/ferry/v1/recommendation_pb";
import { usePages } from "../hooks";
import { seg } from "../router";
import { useSession } from "../session";

const PAGE_SIZE = 5;

export function Recommendations({ dataset, sites }: { dataset: string; sites: Site[] | undefined }) {
  const api = useApi();
  const [computing, setComputing] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const pages = usePages(
    async (pageToken, signal) => {
      const res = await api.recommendations.listRecommendations({ dataset, pageSize: PAGE_SIZE, pageToken }, { signal });
      return { items: res.recommendations, next: res.nextPageToken };
    },
    [dataset],
  );

  const recommendNow = async () => {
    setComputing(true);
    setError(null);
    try {
      await api.recommendations.getRecommendations({ dataset });
      pages.reload();
    } catch (err) {
      setError(err);
    }
    setComputing(false);
  };

  const list = pages.data ?? [];
  return (
    <>
      <div class="title-row">
        <h2>Recommendations</h2>
        <button type="button" onClick={recommendNow} disabled={computing}>
          {computing ? "Computing…" : "Recommend now"}
        </button>
      </div>
      <ErrorNote error={error} context="No recommendation could be computed" />
      <ErrorNote error={pages.error} />
      {pages.data && list.length === 0 && <Empty>No recommendation recorded yet.</Empty>}
      {list.map((r) => (
        <RecommendationCard key={r.id} rec={r} sites={sites} onChanged={pages.reload} />
      ))}
      <Pager pages={pages} label="Recommendations" />
    </>
  );
}

function RecommendationCard({
  rec,
  sites,
  onChanged,
}: {
  rec: Recommendation;
  sites: Site[] | undefined;
  onChanged(): void;
}) {
  const api = useApi();
  const session = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [jobId, setJobId] = useState(rec.jobId);
  const [rejecting, setRejecting] = useState(false);
  const [reason, setReason] = useState("");
  const cost = rec.cost;
  const pending = rec.state === RecommendationState.PENDING;
  const moves = rec.currentSite !== rec.recommendedSite || rec.currentTier !== rec.recommendedTier;

  const act = async (call: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await call();
      onChanged();
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };
  const approve = () =>
    act(async () => {
      const res = await api.recommendations.approveRecommendation({ recommendation: rec.id });
      if (res.job) setJobId(res.job.id);
    });
  const reject = (e: Event) => {
    e.preventDefault();
    act(() => api.recommendations.rejectRecommendation({ recommendation: rec.id, reason: reason.trim() }));
  };

  return (
    <article class="card recommendation" aria-label={`Recommendation of ${formatTime(rec.createTime)}`}>
      <header>
        <span class={`badge rec-${enumLabel(RecommendationState, rec.state).replace(/ /g, "-")}`}>
          {enumLabel(RecommendationState, rec.state)}
        </span>{" "}
        {moves ? (
          <>
            Move from {siteLabel(sites, rec.currentSite)} <TierBadge tier={rec.currentTier} /> to{" "}
            <strong>{siteLabel(sites, rec.recommendedSite)}</strong> <TierBadge tier={rec.recommendedTier} />
          </>
        ) : (
          <>
            Stay on {siteLabel(sites, rec.currentSite)} <TierBadge tier={rec.currentTier} />
          </>
        )}
        <span class="muted"> · {formatTime(rec.createTime)}</span>
      </header>
      <ul class="reasons">
        {rec.reasons.map((r, i) => (
          <li key={`${r.code}-${i}`}>
            <span class="code">{r.code}</span> {r.message}
          </li>
        ))}
      </ul>
      {cost && (
        <dl class="figures">
          <div>
            <dt>Monthly cost now</dt>
            <dd>{formatDollars(cost.monthlyCostNow)}</dd>
          </div>
          <div>
            <dt>Monthly cost after</dt>
            <dd>{formatDollars(cost.monthlyCostAfter)}</dd>
          </div>
          <div>
            <dt>Cost of the move</dt>
            <dd>{formatDollars(cost.moveCost)}</dd>
          </div>
          <div>
            <dt>Pays back in</dt>
            <dd>{cost.paybackDays > 0 ? `${cost.paybackDays.toFixed(1)} days` : "—"}</dd>
          </div>
        </dl>
      )}
      {jobId && (
        <p>
          Migration: <a href={`#/jobs/${seg(jobId)}`}>job {jobId.slice(0, 8)}</a>
        </p>
      )}
      {pending && moves && session.can("operate") && !rejecting && (
        <div class="actions">
          <button type="button" class="primary" disabled={busy} onClick={approve}>
            Approve and migrate
          </button>
          <button type="button" disabled={busy} onClick={() => setRejecting(true)}>
            Reject
          </button>
        </div>
      )}
      {pending && rejecting && (
        <form class="inline" onSubmit={reject}>
          <label for={`reject-${rec.id}`}>Reason for rejecting</label>
          <input id={`reject-${rec.id}`} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          <button type="submit" class="danger" disabled={busy}>
            Reject recommendation
          </button>
          <button type="button" disabled={busy} onClick={() => setRejecting(false)}>
            Keep it
          </button>
        </form>
      )}
      <ErrorNote error={error} />
    </article>
  );
}
