// "A site and prefix" as the source of a migration: Ferry moves datasets, so a path on a
// site resolves to the dataset registered there that holds it (the deepest one, when
// datasets nest), and the rest of the path becomes the plan's key prefix.
import type { Dataset } from "./gen/ferry/v1/dataset_pb";

export interface Resolved {
  dataset: Dataset;
  /** The key prefix below the dataset's path; empty for the whole dataset. */
  prefix: string;
}

function clean(path: string): string {
  return path.trim().replace(/^\/+/, "");
}

/** The dataset among `datasets` (all on one site) that holds `path`, and the prefix. */
export function coveringDataset(datasets: Dataset[], path: string): Resolved | null {
  const wanted = clean(path);
  let best: Resolved | null = null;
  for (const d of datasets) {
    const root = clean(d.path).replace(/\/+$/, "");
    let prefix: string | null = null;
    if (root === "") prefix = wanted;
    else if (wanted === root || wanted === `${root}/`) prefix = "";
    else if (wanted.startsWith(`${root}/`)) prefix = wanted.slice(root.length + 1);
    if (prefix !== null && (!best || root.length > clean(best.dataset.path).length)) best = { dataset: d, prefix };
  }
  return best;
}
