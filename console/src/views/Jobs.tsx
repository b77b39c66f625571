// Migrations list (`#/jobs`): every job, newest first, filtered by state, dataset and
// site as ListJobs allows; the filters live in the address so a filtered list can be
// bookmarked.
import { useApi } from "../api";
import { siteLabel, useDatasetNames, useSites } from "../catalogue";
import { SiteOptions } from "../components/SiteOptions";
import { ErrorNote, Empty, Loading } from "../components/feedback";
import { averageRate, BytesDone, ObjectsDone } from "../components/JobProgressCells";
import { JOB_STATES, JobStateBadge, jobStateFromName, jobStateName } from "../components/labels";
import { Pager } from "../components/Pager";
import { formatTime } from "../format";
import { useFields } from "../fields";
import { usePages } from "../hooks";
import { href, navigate, seg } from "../router";
import { useSession } from "../session";

const PAGE_SIZE = 25;

export function JobsView({ query }: { query: URLSearchParams }) {
  const api = useApi();
  const session = useSession();
  const sites = useSites();
  const filters = {
    state: query.get("state") ?? "",
    dataset: query.get("dataset") ?? "",
    site: query.get("site") ?? "",
  };
  const pages = usePages(
    async (pageToken, signal) => {
      const res = await api.jobs.listJobs(
        {
          pageSize: PAGE_SIZE,
          pageToken,
          state: jobStateFromName(filters.state),
          dataset: filters.dataset,
          site: filters.site,
        },
        { signal },
      );
      return { items: res.jobs, next: res.nextPageToken };
    },
    [filters.state, filters.dataset, filters.site],
  );
  const jobs = pages.data ?? [];
  const names = useDatasetNames(jobs.map((j) => j.dataset));
  const now = new Date();

  const form = useFields(filters, query.toString());
  const apply = (e: Event) => {
    e.preventDefault();
    const v = form.values;
    navigate(href("/jobs", { state: v.state, dataset: v.dataset.trim(), site: v.site }));
  };
  const filtered = filters.state || filters.dataset || filters.site;

  return (
    <section>
      <div class="title-row">
        <h1>Migrations</h1>
        {session.can("operate") && (
          <a class="button primary" href="#/jobs/new">
            New migration
          </a>
        )}
      </div>
      <form class="filters" onSubmit={apply} aria-label="Filter migrations">
        <div class="field">
          <label for="jobs-state">State</label>
          <select id="jobs-state" {...form.bind("state")}>
            <option value="">Any state</option>
            {JOB_STATES.map((s) => (
              <option key={s} value={jobStateName(s)}>
                {jobStateName(s)}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="jobs-dataset">Dataset (name or id)</label>
          <input id="jobs-dataset" {...form.bind("dataset")} />
        </div>
        <div class="field">
          <label for="jobs-site">Site (source or destination)</label>
          <select id="jobs-site" {...form.bind("site")}>
            <SiteOptions sites={sites.data} empty="Any site" />
          </select>
        </div>
        <div class="actions">
          <button type="submit">Apply filters</button>
          {filtered && <a href="#/jobs">Clear filters</a>}
        </div>
      </form>
      <ErrorNote error={sites.error} context="Sites could not be listed" />
      <ErrorNote error={pages.error} />
      {pages.loading && !pages.data && <Loading what="migrations" />}
      {pages.data && jobs.length === 0 && (
        <Empty>{filtered ? "No migration matches these filters." : "No migration has been planned yet."}</Empty>
      )}
      {jobs.length > 0 && (
        <table aria-busy={pages.loading}>
          <caption class="sr-only">Migrations, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Migration</th>
              <th scope="col">Dataset</th>
              <th scope="col">From → to</th>
              <th scope="col">State</th>
              <th scope="col">Objects</th>
              <th scope="col">Bytes</th>
              <th scope="col" title="Bytes done over the time the job ran">
                Average rate
              </th>
              <th scope="col">Started</th>
              <th scope="col">Ended</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((job) => (
              <tr key={job.id}>
                <td>
                  <a href={`#/jobs/${seg(job.id)}`} class="mono">
                    {job.id.slice(0, 8)}
                  </a>
                </td>
                <td>{names.get(job.dataset) ?? job.dataset}</td>
                <td>
                  {siteLabel(sites.data, job.sourceSite)} → {siteLabel(sites.data, job.destinationSite)}
                </td>
                <td>
                  <JobStateBadge state={job.state} />
                </td>
                <td class="progress-cell">
                  <ObjectsDone job={job} />
                </td>
                <td class="num">
                  <BytesDone job={job} />
                </td>
                <td class="num">{averageRate(job, now)}</td>
                <td>{formatTime(job.startTime)}</td>
                <td>{formatTime(job.endTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} label="Migrations" />
    </section>
  );
}
