// Names for the ids the API hands back: jobs and recommendations name their dataset
// and sites by id, and a person reads names. Sites are few and read whole; datasets
// can be many, so only the ones on screen are looked up, once each.
import { useEffect, useRef, useState } from "preact/hooks";
import { useApi } from "./api";
import type { Site } from "./gen/ferry/v1/site_pb";
import { readAll, useLoad, type Loaded } from "./hooks";

/** At most this many sites are read for pickers and names. */
const SITE_LIMIT = 10_000;

export function useSites(): Loaded<Site[]> {
  const api = useApi();
  return useLoad(
    async (signal) =>
      (
        await readAll(async (pageToken) => {
          const res = await api.sites.listSites({ pageSize: 1000, pageToken }, { signal });
          return { items: res.sites, next: res.nextPageToken };
        }, SITE_LIMIT)
      ).items,
    [],
  );
}

/** The site's name for an id (or a name already), falling back to what was given. */
export function siteLabel(sites: Site[] | undefined, idOrName: string): string {
  if (!idOrName) return "—";
  const site = sites?.find((s) => s.id === idOrName || s.name === idOrName);
  return site ? site.name : idOrName;
}

/**
 * Dataset names for ids, looked up with GetDataset as they appear. An id that cannot
 * be looked up (deleted since) stays as it is.
 */
export function useDatasetNames(ids: string[]): Map<string, string> {
  const api = useApi();
  const cache = useRef(new Map<string, string>());
  const asked = useRef(new Set<string>());
  const [, setVersion] = useState(0);
  const key = [...new Set(ids)].sort().join(",");
  useEffect(() => {
    const missing = [...new Set(ids)].filter((id) => id && !asked.current.has(id));
    if (missing.length === 0) return;
    for (const id of missing) asked.current.add(id);
    let live = true;
    Promise.allSettled(missing.map((id) => api.datasets.getDataset({ dataset: id }))).then((results) => {
      results.forEach((r, i) => {
        if (r.status === "fulfilled" && r.value.dataset) cache.current.set(missing[i], r.value.dataset.name);
      });
      if (live) setVersion((v) => v + 1);
    });
    return () => {
      live = false;
    };
  }, [key]);
  return cache.current;
}
