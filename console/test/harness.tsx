// Shared by the component tests: a small catalogue, and the console rendered at an
// address, signed in with one of the world's tokens or not at all.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { cleanup, render } from "@testing-library/preact";
import { App } from "../src/app";
import { Tier } from "../src/gen/ferry/v1/common_pb";
import { DatasetSchema, ReplicaRole, ReplicaSchema, ReplicaState } from "../src/gen/ferry/v1/dataset_pb";
import { JobObjectSchema, JobSchema, JobState, ObjectStatus } from "../src/gen/ferry/v1/job_pb";
import { SiteSchema } from "../src/gen/ferry/v1/site_pb";
import { ControlPlane, emptyWorld } from "./control-plane";

export const HOUR = 3_600_000;

/** Two sites, one dataset on the hot one, and a migration of it that is copying. */
export function catalogue(): ControlPlane {
  const w = emptyWorld();
  w.sites.push(
    create(SiteSchema, {
      id: "s-fast",
      name: "fast",
      uri: "file:///srv/fast",
      tier: Tier.HOT,
      latencyMs: 2,
      prices: { storagePerGbMonth: 0.023 },
    }),
    create(SiteSchema, {
      id: "s-vault",
      name: "vault",
      uri: "s3://archive/ferry",
      tier: Tier.COLD,
      options: { region: "eu-west-1" },
      credentialKeys: ["access_key_id", "secret_access_key"],
      prices: { storagePerGbMonth: 0.004 },
    }),
  );
  w.datasets.push(
    create(DatasetSchema, {
      id: "d-genome",
      name: "genome",
      site: "s-fast",
      path: "projects/genome",
      currentTier: Tier.HOT,
      sizeBytes: 50_000_000_000n,
      objectCount: 25n,
      owner: "research",
      labels: { team: "genomics" },
    }),
  );
  w.replicas.set("d-genome", [
    create(ReplicaSchema, {
      site: "s-fast",
      path: "projects/genome",
      role: ReplicaRole.PRIMARY,
      state: ReplicaState.READY,
    }),
  ]);
  w.jobs.push(
    create(JobSchema, {
      id: "job-1",
      dataset: "d-genome",
      sourceSite: "s-fast",
      sourcePath: "projects/genome",
      destinationSite: "s-vault",
      destinationPath: "projects/genome",
      state: JobState.COPYING,
      objectsTotal: 25n,
      objectsDone: 10n,
      bytesTotal: 4n * 1024n ** 3n,
      bytesDone: 1024n ** 3n,
      startTime: timestampFromDate(new Date(Date.now() - 60_000)),
      attempt: 1,
    }),
  );
  w.objects.set("job-1", [
    create(JobObjectSchema, { key: "raw/a.bam", size: 1024n, status: ObjectStatus.VERIFIED, attempts: 1 }),
    create(JobObjectSchema, {
      key: "raw/b.bam",
      size: 2048n,
      status: ObjectStatus.FAILED,
      attempts: 3,
      operation: "read",
      error: "read: permission denied: 403 AccessDenied",
    }),
  ]);
  return new ControlPlane(w);
}

export function renderConsole(cp: ControlPlane, hash: string, token?: string) {
  sessionStorage.clear();
  if (token) sessionStorage.setItem("ferry.console.token", token);
  location.hash = hash;
  return render(<App connect={cp.connect} />);
}

export function reset() {
  cleanup();
  sessionStorage.clear();
  location.hash = "";
}
