// Sites (`#/sites`): each storage location with its settings. Credentials are
// write-only in the API: only the names of the stored keys exist to show, and admins
// may replace them.
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { useSites } from "../catalogue";
import { TierBadge } from "../components/labels";
import { formatDollars, formatLimit, formatTime } from "../format";
import { useSession } from "../session";
import { SiteCredentials } from "./SiteCredentials";

export function SitesView() {
  const sites = useSites();
  const session = useSession();
  return (
    <section>
      <h1>Sites</h1>
      <ErrorNote error={sites.error} />
      {!sites.data && !sites.error && <Loading what="sites" />}
      {sites.data && sites.data.length === 0 && <Empty>No site is registered yet.</Empty>}
      {(sites.data ?? []).map((s) => (
        <article key={s.id} class="card site" aria-labelledby={`site-${s.id}`}>
          <div class="title-row">
            <h2 id={`site-${s.id}`}>{s.name}</h2>
            <TierBadge tier={s.tier} />
          </div>
          <dl class="details">
            <dt>URI</dt>
            <dd class="mono">{s.uri}</dd>
            <dt>Options</dt>
            <dd>
              {Object.keys(s.options).length === 0
                ? "none"
                : Object.entries(s.options)
                    .sort(([a], [b]) => a.localeCompare(b))
                    .map(([k, v]) => (
                      <span key={k} class="label mono">
                        {k}={v}
                      </span>
                    ))}
            </dd>
            <dt>Credentials</dt>
            <dd>
              {s.credentialKeys.length === 0
                ? "none"
                : `${s.credentialKeys.join(", ")} (stored; never shown)`}
            </dd>
            <dt>Default storage class</dt>
            <dd>{s.defaultStorageClass || "—"}</dd>
            <dt>First-byte latency</dt>
            <dd>{s.latencyMs} ms</dd>
            <dt>Bandwidth limit</dt>
            <dd>{formatLimit(s.bandwidthLimitBytesPerSec)}</dd>
            <dt>Prices</dt>
            <dd>
              {s.prices
                ? `${formatDollars(s.prices.storagePerGbMonth)} per GB-month stored, ${formatDollars(
                    s.prices.retrievalPerGb,
                  )} per GB retrieved, ${formatDollars(s.prices.egressPerGb)} per GB out, ${formatDollars(
                    s.prices.per1000Requests,
                  )} per 1,000 requests` +
                  (s.prices.minStorageDays ? `, billed at least ${s.prices.minStorageDays} days` : "")
                : "none set"}
            </dd>
            <dt>Created</dt>
            <dd>{formatTime(s.createTime)}</dd>
            <dt>Updated</dt>
            <dd>{formatTime(s.updateTime)}</dd>
          </dl>
          {session.can("administer") && <SiteCredentials site={s} onChanged={sites.reload} />}
        </article>
      ))}
    </section>
  );
}
