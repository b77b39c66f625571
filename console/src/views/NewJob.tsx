// Plan a migration (`#/jobs/new`, `?dataset=NAME` to start from one): the dataset, the
// destination, which objects, how to verify and how fast. "Dry run" asks what would
// move (PlanMigration with dry_run); "Start migration" plans it and opens its page. The
// server's INVALID_ARGUMENT names the field it refuses, and the message is shown there.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useMemo, useState } from "preact/hooks";
import { useApi } from "../api";
import { useSites } from "../catalogue";
import { ErrorNote, Forbidden } from "../components/feedback";
import { Field } from "../components/Field";
import { SiteOptions } from "../components/SiteOptions";
import { describeError, fieldError } from "../errors";
import { VerifyMode } from "../gen/ferry/v1/common_pb";
import {
  ObjectFilterSchema,
  PlanMigrationRequestSchema,
  type DryRunReport,
  type PlanMigrationRequest,
} from "../gen/ferry/v1/job_pb";
import { formatBytes, formatCount, formatDollars, fromLocalInput, parseBytes, parseRate } from "../format";
import { useFields } from "../fields";
import { readAll, useLoad } from "../hooks";
import { navigate, seg } from "../router";
import { useSession } from "../session";
import { coveringDataset } from "../source";

/** Datasets offered in the picker; beyond this, the name is typed. */
const PICKER_LIMIT = 1000;

const EMPTY = {
  source: "dataset",
  source_site: "",
  source_path: "",
  dataset: "",
  destination_site: "",
  destination_path: "",
  storage_class: "",
  verify_mode: "",
  bandwidth: "",
  prefix: "",
  include: "",
  exclude: "",
  min_size: "",
  max_size: "",
  modified_after: "",
  modified_before: "",
};
type FormValues = typeof EMPTY;
type FieldName = keyof FormValues;

/** The server's field paths, as forms name them. */
const SERVER_FIELDS: Record<string, FieldName> = {
  dataset: "dataset",
  destination_site: "destination_site",
  destination_path: "destination_path",
  storage_class: "storage_class",
  verify_mode: "verify_mode",
  bandwidth_limit_bytes_per_sec: "bandwidth",
  "filter.prefix": "prefix",
  "filter.include": "include",
  "filter.exclude": "exclude",
  "filter.min_size": "min_size",
  "filter.max_size": "max_size",
  "filter.modified_after": "modified_after",
  "filter.modified_before": "modified_before",
};

export function NewJobView({ query }: { query: URLSearchParams }) {
  const session = useSession();
  if (!session.can("operate")) return <Forbidden what="Planning a migration" role="operator" />;
  return <NewJobForm initialDataset={query.get("dataset") ?? ""} />;
}

function NewJobForm({ initialDataset }: { initialDataset: string }) {
  const api = useApi();
  const sites = useSites();
  const datasets = useLoad(
    (signal) =>
      readAll(async (pageToken) => {
        const res = await api.datasets.listDatasets({ pageSize: PICKER_LIMIT, pageToken }, { signal });
        return { items: res.datasets, next: res.nextPageToken };
      }, PICKER_LIMIT),
    [],
  );
  const form = useFields({ ...EMPTY, dataset: initialDataset });
  const [retire, setRetire] = useState(false);
  const [errors, setErrors] = useState<Partial<Record<FieldName, string>>>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState<"" | "dry" | "start">("");
  const [resolved, setResolved] = useState<string | null>(null);
  const [dryRun, setDryRun] = useState<{ key: string; report: DryRunReport } | null>(null);
  const idempotencyKey = useMemo(randomKey, []);

  const v = form.values;
  const requestKey = JSON.stringify([v, retire]);

  const submit = async (dry: boolean) => {
    setFailure(null);
    const values = v.source === "site" ? await fromSiteAndPath(v) : v;
    if (!values) return;
    const built = buildRequest(values, retire);
    if ("errors" in built) {
      setErrors(built.errors);
      return;
    }
    setErrors({});
    const request = built.request;
    request.dryRun = dry;
    if (!dry) request.idempotencyKey = idempotencyKey;
    setBusy(dry ? "dry" : "start");
    try {
      const res = await api.jobs.planMigration(request);
      if (dry) {
        if (res.dryRun) setDryRun({ key: requestKey, report: res.dryRun });
      } else if (res.job) {
        navigate(`#/jobs/${seg(res.job.id)}`);
        return;
      }
    } catch (err) {
      const field = fieldError(err);
      const name = field && SERVER_FIELDS[field.field.replace(/\[\d+\]$/, "")];
      if (field && name) setErrors({ [name]: field.message });
      setFailure(err);
    }
    setBusy("");
  };

  /** The form with the dataset and prefix a site and path stand for; null (and the
   * reason shown) when no dataset holds the path. */
  const fromSiteAndPath = async (values: FormValues): Promise<FormValues | null> => {
    if (!values.source_site || !values.source_path.trim()) {
      setErrors({
        ...(values.source_site ? {} : { source_site: "Choose the site the data is on." }),
        ...(values.source_path.trim() ? {} : { source_path: "Give the path on the site." }),
      });
      return null;
    }
    try {
      const onSite = await readAll(async (pageToken) => {
        const res = await api.datasets.listDatasets({ site: values.source_site, pageSize: 1000, pageToken });
        return { items: res.datasets, next: res.nextPageToken };
      }, 100_000);
      const found = coveringDataset(onSite.items, values.source_path);
      if (!found) {
        setErrors({
          source_path:
            `No dataset on ${values.source_site} holds ${values.source_path.trim()}: Ferry moves datasets. ` +
            `An admin registers one first: ferry dataset create NAME --site ${values.source_site} --path ${values.source_path.trim()}`,
        });
        return null;
      }
      setResolved(`Dataset ${found.dataset.name}${found.prefix ? `, objects below ${found.prefix}` : ", all of it"}.`);
      return { ...values, dataset: found.dataset.name, prefix: found.prefix };
    } catch (err) {
      setFailure(err);
      return null;
    }
  };

  const datasetList = datasets.data?.items ?? [];
  const siteOptions = <SiteOptions sites={sites.data} empty="Choose a site" withTier />;
  const report = dryRun?.key === requestKey ? dryRun.report : null;
  const field = (name: FieldName) => ({ ...form.bind(name), name });

  return (
    <section>
      <p class="crumbs">
        <a href="#/jobs">Migrations</a> /
      </p>
      <h1>New migration</h1>
      <form
        class="plan"
        onSubmit={(e) => {
          e.preventDefault();
          submit(false);
        }}
        noValidate
      >
        {failure ? (
          <p class="error" role="alert">
            {fieldError(failure) ? "The control plane refused the plan. " : ""}
            {describeError(failure)}
          </p>
        ) : Object.keys(errors).length > 0 ? (
          <p class="error" role="alert">
            Some fields need a look; each says why below it.
          </p>
        ) : null}
        <fieldset class="choice">
          <legend>Move</legend>
          <div class="field check">
            <input id="plan-source-dataset" type="radio" name="source" value="dataset"
              checked={v.source === "dataset"} onChange={() => form.set("source", "dataset")} />
            <label for="plan-source-dataset">A dataset</label>
          </div>
          <div class="field check">
            <input id="plan-source-site" type="radio" name="source" value="site"
              checked={v.source === "site"} onChange={() => form.set("source", "site")} />
            <label for="plan-source-site">A site and path</label>
          </div>
        </fieldset>
        <fieldset>
          <legend>What and where</legend>
          {v.source === "site" ? (
            <>
              <Field id="plan-source-site-name" label="Source site" error={errors.source_site}>
                <select {...field("source_site")}>{siteOptions}</select>
              </Field>
              <Field
                id="plan-source-path"
                label="Path on the site"
                help="Below the site's root. The dataset holding it moves, only the objects below the path."
                error={errors.source_path}
              >
                <input {...field("source_path")} />
              </Field>
              {resolved && (
                <p class="help" role="status">
                  {resolved}
                </p>
              )}
            </>
          ) : (
          <Field id="plan-dataset" label="Dataset" error={errors.dataset}>
            {datasets.data && !datasets.data.truncated ? (
              <select {...field("dataset")}>
                <option value="">Choose a dataset</option>
                {datasetList.map((d) => (
                  <option key={d.id} value={d.name}>
                    {d.name} ({formatBytes(d.sizeBytes)})
                  </option>
                ))}
              </select>
            ) : (
              <input {...field("dataset")} list="plan-datasets" placeholder="name or id" />
            )}
          </Field>
          )}
          <datalist id="plan-datasets">
            {datasetList.map((d) => (
              <option key={d.id} value={d.name} />
            ))}
          </datalist>
          <Field id="plan-destination" label="Destination site" error={errors.destination_site}>
            <select {...field("destination_site")}>{siteOptions}</select>
          </Field>
          <Field
            id="plan-path"
            label="Destination path"
            help="Below the site's root; empty keeps the dataset's current path."
            error={errors.destination_path}
          >
            <input {...field("destination_path")} />
          </Field>
          <Field
            id="plan-class"
            label="Storage class"
            help="Empty: the destination site's default."
            error={errors.storage_class}
          >
            <input {...field("storage_class")} />
          </Field>
        </fieldset>
        <fieldset>
          <legend>Which objects</legend>
          {v.source === "dataset" && (
            <Field id="plan-prefix" label="Prefix" help="Below the dataset's path." error={errors.prefix}>
              <input {...field("prefix")} />
            </Field>
          )}
          <Field id="plan-include" label="Include globs" help="One per line, e.g. *.bam" error={errors.include}>
            <textarea {...field("include")} rows={2} />
          </Field>
          <Field id="plan-exclude" label="Exclude globs" help="One per line." error={errors.exclude}>
            <textarea {...field("exclude")} rows={2} />
          </Field>
          <Field id="plan-min" label="Minimum size" help="e.g. 1MiB; empty for none." error={errors.min_size}>
            <input {...field("min_size")} />
          </Field>
          <Field id="plan-max" label="Maximum size" help="e.g. 5GB; empty for none." error={errors.max_size}>
            <input {...field("max_size")} />
          </Field>
          <Field id="plan-after" label="Modified after" help="Your local time." error={errors.modified_after}>
            <input type="datetime-local" {...field("modified_after")} />
          </Field>
          <Field id="plan-before" label="Modified before" help="Your local time." error={errors.modified_before}>
            <input type="datetime-local" {...field("modified_before")} />
          </Field>
        </fieldset>
        <fieldset>
          <legend>How</legend>
          <Field id="plan-verify" label="Verification" error={errors.verify_mode}>
            <select {...field("verify_mode")}>
              <option value="">Default</option>
              <option value="quick">quick: sizes and recorded checksums</option>
              <option value="full">full: read every object back</option>
            </select>
          </Field>
          <Field
            id="plan-bandwidth"
            label="Bandwidth limit"
            help="Bytes per second for the whole job, e.g. 50MB or 1GiB; empty for none."
            error={errors.bandwidth}
          >
            <input {...field("bandwidth")} />
          </Field>
          <div class="field check">
            <input
              id="plan-retire"
              type="checkbox"
              checked={retire}
              onChange={(e) => setRetire(e.currentTarget.checked)}
            />
            <label for="plan-retire">Delete the source once the migration has switched over</label>
          </div>
        </fieldset>
        <div class="actions">
          <button type="button" disabled={busy !== ""} onClick={() => submit(true)}>
            {busy === "dry" ? "Counting…" : "Dry run"}
          </button>
          <button type="submit" class="primary" disabled={busy !== ""}>
            {busy === "start" ? "Starting…" : "Start migration"}
          </button>
        </div>
      </form>
      <ErrorNote error={sites.error} context="Sites could not be listed" />
      <ErrorNote error={datasets.error} context="Datasets could not be listed" />
      {report && <DryRun report={report} />}
    </section>
  );
}

function DryRun({ report }: { report: DryRunReport }) {
  return (
    <section class="card" aria-labelledby="dry-run-title">
      <h2 id="dry-run-title">Dry run</h2>
      <p role="status">
        {formatCount(report.objects)} {report.objects === 1n ? "object" : "objects"} ({formatBytes(report.bytes)})
        would move, for an estimated {formatDollars(report.estimatedCost)}.
      </p>
      {report.sample.length > 0 && (
        <>
          <h3>First objects</h3>
          <ul class="sample">
            {report.sample.map((o) => (
              <li key={o.key}>
                <span class="mono">{o.key}</span> {formatBytes(o.size)}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** The request the form describes, or what is wrong with each field before asking. */
export function buildRequest(
  v: FormValues,
  retire: boolean,
): { request: PlanMigrationRequest } | { errors: Partial<Record<FieldName, string>> } {
  const errors: Partial<Record<FieldName, string>> = {};
  const parse = <T,>(name: FieldName, parser: () => T, fallback: T): T => {
    try {
      return parser();
    } catch (err) {
      errors[name] = describeError(err);
      return fallback;
    }
  };
  if (!v.dataset.trim()) errors.dataset = "Choose the dataset to move.";
  if (!v.destination_site) errors.destination_site = "Choose where it goes.";
  const minSize = parse("min_size", () => (v.min_size.trim() ? parseBytes(v.min_size) : 0n), 0n);
  const maxSize = parse("max_size", () => (v.max_size.trim() ? parseBytes(v.max_size) : 0n), 0n);
  const bandwidth = parse("bandwidth", () => parseRate(v.bandwidth), 0n);
  const after = parse("modified_after", () => fromLocalInput(v.modified_after), null);
  const before = parse("modified_before", () => fromLocalInput(v.modified_before), null);
  if (Object.keys(errors).length > 0) return { errors };
  const verify = { "": VerifyMode.UNSPECIFIED, quick: VerifyMode.QUICK, full: VerifyMode.FULL }[v.verify_mode];
  return {
    request: create(PlanMigrationRequestSchema, {
      dataset: v.dataset.trim(),
      destinationSite: v.destination_site,
      destinationPath: v.destination_path.trim(),
      storageClass: v.storage_class.trim(),
      verifyMode: verify ?? VerifyMode.UNSPECIFIED,
      retireSource: retire,
      bandwidthLimitBytesPerSec: bandwidth,
      filter: create(ObjectFilterSchema, {
        prefix: v.prefix.trim(),
        include: lines(v.include),
        exclude: lines(v.exclude),
        minSize,
        maxSize,
        modifiedAfter: after ? timestampFromDate(after) : undefined,
        modifiedBefore: before ? timestampFromDate(before) : undefined,
      }),
    }),
  };
}

/** A key that makes pressing Start twice plan one job (random, 128 bits, hex). */
function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
