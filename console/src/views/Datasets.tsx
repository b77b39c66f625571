// Datasets (`#/datasets`), filtered by site, tier, owner and labels as ListDatasets
// allows, page by page. ListDatasets has no name search, so a name is opened directly
// (GetDataset takes a name) instead of searched for.
import { useState } from "preact/hooks";
import { useApi } from "../api";
import { siteLabel, useSites } from "../catalogue";
import { SiteOptions } from "../components/SiteOptions";
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { TIERS, TierBadge, tierFromName, tierName } from "../components/labels";
import { Pager } from "../components/Pager";
import { useFields } from "../fields";
import { formatBytes, formatCount, formatTime } from "../format";
import { usePages } from "../hooks";
import { href, navigate, seg } from "../router";

const PAGE_SIZE = 50;

/** `team=genomics, env=prod` → a label map; null when a pair has no `=`. */
export function parseLabels(text: string): Record<string, string> | null {
  const labels: Record<string, string> = {};
  for (const pair of text.split(/[,\s]+/).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at <= 0) return null;
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

export function DatasetsView({ query }: { query: URLSearchParams }) {
  const api = useApi();
  const sites = useSites();
  const filters = {
    name: query.get("name") ?? "",
    site: query.get("site") ?? "",
    tier: query.get("tier") ?? "",
    owner: query.get("owner") ?? "",
    labels: query.get("labels") ?? "",
  };
  const labels = parseLabels(filters.labels);
  const pages = usePages(
    async (pageToken, signal) => {
      if (!labels) throw new Error(`Labels are key=value pairs separated by commas, not "${filters.labels}".`);
      const res = await api.datasets.listDatasets(
        {
          pageSize: PAGE_SIZE,
          pageToken,
          nameContains: filters.name,
          site: filters.site,
          tier: tierFromName(filters.tier),
          owner: filters.owner,
          labels,
        },
        { signal },
      );
      return { items: res.datasets, next: res.nextPageToken };
    },
    [filters.name, filters.site, filters.tier, filters.owner, filters.labels],
  );
  const form = useFields(filters, query.toString());
  const [name, setName] = useState("");
  const datasets = pages.data ?? [];
  const filtered = Object.values(filters).some(Boolean);

  return (
    <section>
      <h1>Datasets</h1>
      <div class="toolbar">
        <form
          class="filters"
          aria-label="Filter datasets"
          onSubmit={(e) => {
            e.preventDefault();
            const v = form.values;
            navigate(
              href("/datasets", {
                name: v.name.trim(),
                site: v.site,
                tier: v.tier,
                owner: v.owner.trim(),
                labels: v.labels.trim(),
              }),
            );
          }}
        >
          <div class="field">
            <label for="ds-name">Name contains</label>
            <input id="ds-name" type="search" {...form.bind("name")} />
          </div>
          <div class="field">
            <label for="ds-site">Site</label>
            <select id="ds-site" {...form.bind("site")}>
              <SiteOptions sites={sites.data} empty="Any site" />
            </select>
          </div>
          <div class="field">
            <label for="ds-tier">Tier</label>
            <select id="ds-tier" {...form.bind("tier")}>
              <option value="">Any tier</option>
              {TIERS.map((t) => (
                <option key={t} value={tierName(t)}>
                  {tierName(t)}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="ds-owner">Owner</label>
            <input id="ds-owner" {...form.bind("owner")} />
          </div>
          <div class="field">
            <label for="ds-labels">Labels</label>
            <input id="ds-labels" {...form.bind("labels")} placeholder="team=genomics, env=prod" />
          </div>
          <div class="actions">
            <button type="submit">Apply filters</button>
            {filtered && <a href="#/datasets">Clear filters</a>}
          </div>
        </form>
        <form
          class="filters jump"
          aria-label="Open a dataset"
          onSubmit={(e) => {
            e.preventDefault();
            if (name.trim()) navigate(`#/datasets/${seg(name.trim())}`);
          }}
        >
          <div class="field">
            <label for="ds-open">Dataset name or id</label>
            <input id="ds-open" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <div class="actions">
            <button type="submit" disabled={!name.trim()}>
              Open
            </button>
          </div>
        </form>
      </div>
      <ErrorNote error={sites.error} context="Sites could not be listed" />
      <ErrorNote error={pages.error} />
      {pages.loading && !pages.data && <Loading what="datasets" />}
      {pages.data && datasets.length === 0 && (
        <Empty>{filtered ? "No dataset matches these filters." : "No dataset is registered yet."}</Empty>
      )}
      {datasets.length > 0 && (
        <table aria-busy={pages.loading}>
          <caption class="sr-only">Datasets by name</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Site</th>
              <th scope="col">Path</th>
              <th scope="col">Tier</th>
              <th scope="col" class="num">
                Size
              </th>
              <th scope="col" class="num">
                Objects
              </th>
              <th scope="col">Owner</th>
              <th scope="col">Labels</th>
              <th scope="col">Last access</th>
            </tr>
          </thead>
          <tbody>
            {datasets.map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={`#/datasets/${seg(d.name)}`}>{d.name}</a>
                </td>
                <td>{siteLabel(sites.data, d.site)}</td>
                <td class="mono">{d.path}</td>
                <td>
                  <TierBadge tier={d.currentTier} />
                </td>
                <td class="num">{formatBytes(d.sizeBytes)}</td>
                <td class="num">{formatCount(d.objectCount)}</td>
                <td>{d.owner}</td>
                <td>
                  {Object.entries(d.labels).map(([k, v]) => (
                    <span key={k} class="label">
                      {k}={v}
                    </span>
                  ))}
                </td>
                <td>{formatTime(d.lastAccessTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} label="Datasets" />
    </section>
  );
}
