// An in-memory control plane for component tests: the ferry.v1 services as the API
// documents them (bearer tokens and roles, page tokens, filters, INVALID_ARGUMENT
// naming the field, WatchJob sending the job now and at each change until it ends),
// behind `createRouterTransport`. It stands for the API's contract, not for the views.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { bearerInterceptor, type Credentials } from "../src/api";
import { AccessEventService, type HourlyAccess } from "../src/gen/ferry/v1/access_pb";
import { AdminService, Role, WhoAmIResponseSchema, type AuditEvent } from "../src/gen/ferry/v1/admin_pb";
import { AgentService, type Agent } from "../src/gen/ferry/v1/agent_pb";
import { DatasetService, type Dataset, type Replica } from "../src/gen/ferry/v1/dataset_pb";
import {
  DryRunReportSchema,
  JobSchema,
  JobService,
  JobState,
  type Job,
  type JobObject,
  type JobProgress,
  JobProgressSchema,
} from "../src/gen/ferry/v1/job_pb";
import {
  RecommendationService,
  RecommendationState,
  type Recommendation,
} from "../src/gen/ferry/v1/recommendation_pb";
import { SiteService, type Site } from "../src/gen/ferry/v1/site_pb";

export interface World {
  /** Secret → the token's name and role. */
  tokens: Map<string, { name: string; role: Role }>;
  sites: Site[];
  datasets: Dataset[];
  replicas: Map<string, Replica[]>;
  jobs: Job[];
  objects: Map<string, JobObject[]>;
  recommendations: Recommendation[];
  agents: Agent[];
  audit: AuditEvent[];
  hours: Map<string, HourlyAccess[]>;
  /** Site id → the credentials stored for it (never returned by the API). */
  credentials: Map<string, Record<string, string>>;
  /** Every request the console made, as `Service/Method`. */
  calls: string[];
}

export function emptyWorld(): World {
  return {
    tokens: new Map([
      ["admin-secret", { name: "root", role: Role.ADMIN }],
      ["operator-secret", { name: "oncall", role: Role.OPERATOR }],
      ["viewer-secret", { name: "dashboard", role: Role.VIEWER }],
    ]),
    sites: [],
    datasets: [],
    replicas: new Map(),
    jobs: [],
    objects: new Map(),
    recommendations: [],
    agents: [],
    audit: [],
    hours: new Map(),
    credentials: new Map(),
    calls: [],
  };
}

const OPERATOR_METHODS = new Set([
  "PlanMigration",
  "CancelJob",
  "RetryJob",
  "UpdateJob",
  "ApproveRecommendation",
  "RejectRecommendation",
]);
const ADMIN_METHODS = new Set(["ListAuditEvents", "ListTokens", "CreateToken", "RevokeToken", "UpdateSite"]);

const RANK: Record<number, number> = { [Role.VIEWER]: 1, [Role.OPERATOR]: 2, [Role.ADMIN]: 3 };

/** Pages of a list by offset, as `next_page_token` / `page_token`. */
function page<T>(items: T[], pageSize: number, pageToken: string): { items: T[]; next: string } {
  const size = pageSize === 0 ? 100 : pageSize;
  if (size < 0) throw new ConnectError("page_size: must not be negative", Code.InvalidArgument);
  let start = 0;
  if (pageToken) {
    if (!/^o\d+$/.test(pageToken)) throw new ConnectError("page_token: not a token this server handed out", Code.InvalidArgument);
    start = Number(pageToken.slice(1));
  }
  const end = start + size;
  return { items: items.slice(start, end), next: end < items.length ? `o${end}` : "" };
}

const TERMINAL = [JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED];

export class ControlPlane {
  world: World;
  private watchers = new Map<string, Set<() => void>>();

  constructor(world: World = emptyWorld()) {
    this.world = world;
  }

  /** The console's `connect` prop: this control plane, with the console's interceptor. */
  connect = (credentials: Credentials) =>
    createRouterTransport((router) => this.routes(router), {
      transport: { interceptors: [bearerInterceptor(credentials)] },
    });

  /** Changes a job as an agent's report would, and tells its watchers. */
  progress(id: string, change: Partial<Job>, bytesPerSec = 0, etaSeconds?: number): void {
    const job = this.job(id);
    Object.assign(job, change);
    this.rates.set(id, { bytesPerSec, etaSeconds });
    for (const notify of this.watchers.get(id) ?? []) notify();
  }

  /** Revokes a token: every later call with it, and every open stream, fails. */
  revoke(secret: string): void {
    this.world.tokens.delete(secret);
    for (const set of this.watchers.values()) for (const notify of set) notify();
  }

  private rates = new Map<string, { bytesPerSec: number; etaSeconds?: number }>();

  private job(id: string): Job {
    const job = this.world.jobs.find((j) => j.id === id);
    if (!job) throw new ConnectError(`job ${id} not found`, Code.NotFound);
    return job;
  }

  private authorize(ctx: HandlerContext): { name: string; role: Role } {
    this.world.calls.push(`${ctx.service.name}/${ctx.method.name}`);
    const header = ctx.requestHeader.get("authorization") ?? "";
    const secret = header.replace(/^Bearer /, "");
    const who = this.world.tokens.get(secret);
    if (!who) throw new ConnectError("missing, unknown, expired or revoked token", Code.Unauthenticated);
    const method = ctx.method.name;
    const need = ADMIN_METHODS.has(method) ? Role.ADMIN : OPERATOR_METHODS.has(method) ? Role.OPERATOR : Role.VIEWER;
    if (method !== "WhoAmI" && (RANK[who.role] ?? 0) < RANK[need]) {
      const name = need === Role.ADMIN ? "admin" : need === Role.OPERATOR ? "operator" : "viewer";
      throw new ConnectError(`ferry.v1.${ctx.service.name}/${method} needs the ${name} role`, Code.PermissionDenied);
    }
    return who;
  }

  private routes(router: Parameters<Parameters<typeof createRouterTransport>[0]>[0]) {
    const w = this.world;
    const self = this;
    router.service(AdminService, {
      whoAmI: (_req, ctx) => {
        const who = this.authorize(ctx);
        return create(WhoAmIResponseSchema, { name: who.name, role: who.role, principal: `token:${who.name}` });
      },
      listAuditEvents: (req, ctx) => {
        this.authorize(ctx);
        const events = w.audit.filter(
          (e) =>
            (!req.principal || e.principal === req.principal) &&
            (!req.resource || e.resource === req.resource) &&
            (!req.method || e.method === req.method),
        );
        const p = page(events, req.pageSize, req.pageToken);
        return { events: p.items, nextPageToken: p.next };
      },
    });
    router.service(SiteService, {
      listSites: (req, ctx) => {
        this.authorize(ctx);
        const p = page(w.sites, req.pageSize, req.pageToken);
        // As the control plane does: every replica on the site counts its dataset's size.
        const sites = p.items.map((s) => {
          const held = w.datasets.filter((d) => (w.replicas.get(d.id) ?? []).some((r) => r.site === s.id));
          const bytes = w.datasets.reduce(
            (sum, d) => sum + BigInt((w.replicas.get(d.id) ?? []).filter((r) => r.site === s.id).length) * d.sizeBytes,
            0n,
          );
          return { ...s, bytesStored: bytes, datasetCount: held.length };
        });
        return { sites, nextPageToken: p.next };
      },
      // Credentials only, as the console changes them: like the control plane, it keeps
      // the values (here, in `w.credentials`) and returns only their names.
      updateSite: (req, ctx) => {
        this.authorize(ctx);
        const i = w.sites.findIndex((s) => s.name === req.site?.name || s.id === req.site?.id);
        if (i < 0) throw new ConnectError(`site: ${req.site?.name} not found`, Code.NotFound);
        if (!req.updateMask?.paths.includes("credentials")) {
          throw new ConnectError("update_mask: this fake changes credentials only", Code.Unimplemented);
        }
        w.credentials.set(w.sites[i].id, { ...req.credentials });
        w.sites[i] = { ...w.sites[i], credentialKeys: Object.keys(req.credentials).sort() };
        return w.sites[i];
      },
    });
    router.service(DatasetService, {
      getDataset: (req, ctx) => {
        this.authorize(ctx);
        const d = w.datasets.find((x) => x.id === req.dataset || x.name === req.dataset);
        if (!d) throw new ConnectError(`dataset ${req.dataset} not found`, Code.NotFound);
        return { dataset: d, replicas: w.replicas.get(d.id) ?? [] };
      },
      listDatasets: (req, ctx) => {
        this.authorize(ctx);
        const site = w.sites.find((s) => s.id === req.site || s.name === req.site);
        const list = w.datasets.filter(
          (d) =>
            (!req.site || d.site === site?.id) &&
            (!req.tier || d.currentTier === req.tier) &&
            (!req.owner || d.owner === req.owner) &&
            d.name.toLowerCase().includes(req.nameContains.toLowerCase()) &&
            Object.entries(req.labels).every(([k, v]) => d.labels[k] === v),
        );
        const p = page(list, req.pageSize, req.pageToken);
        return { datasets: p.items, nextPageToken: p.next };
      },
    });
    router.service(AccessEventService, {
      getAccessStats: (req, ctx) => {
        this.authorize(ctx);
        return { hours: w.hours.get(req.dataset) ?? [] };
      },
    });
    router.service(AgentService, {
      listAgents: (_req, ctx) => {
        this.authorize(ctx);
        return { agents: w.agents };
      },
    });
    router.service(RecommendationService, {
      listRecommendations: (req, ctx) => {
        this.authorize(ctx);
        const list = w.recommendations.filter((r) => !req.dataset || r.dataset === req.dataset);
        const p = page(list, req.pageSize, req.pageToken);
        return { recommendations: p.items, nextPageToken: p.next };
      },
      approveRecommendation: (req, ctx) => {
        this.authorize(ctx);
        const rec = w.recommendations.find((r) => r.id === req.recommendation);
        if (!rec) throw new ConnectError("recommendation not found", Code.NotFound);
        if (rec.state !== RecommendationState.PENDING) {
          throw new ConnectError("recommendation: is no longer pending", Code.FailedPrecondition);
        }
        const job = create(JobSchema, {
          id: `job-from-${rec.id}`,
          dataset: rec.dataset,
          sourceSite: rec.currentSite,
          destinationSite: rec.recommendedSite,
          state: JobState.QUEUED,
        });
        w.jobs.unshift(job);
        rec.state = RecommendationState.APPROVED;
        rec.jobId = job.id;
        return { recommendation: rec, job };
      },
      rejectRecommendation: (req, ctx) => {
        this.authorize(ctx);
        const rec = w.recommendations.find((r) => r.id === req.recommendation);
        if (!rec) throw new ConnectError("recommendation not found", Code.NotFound);
        rec.state = RecommendationState.REJECTED;
        return rec;
      },
    });
    router.service(JobService, {
      listJobs: (req, ctx) => {
        this.authorize(ctx);
        const site = w.sites.find((s) => s.id === req.site || s.name === req.site);
        const dataset = w.datasets.find((d) => d.id === req.dataset || d.name === req.dataset);
        const list = w.jobs.filter(
          (j) =>
            (!req.state || j.state === req.state) &&
            (!req.dataset || j.dataset === dataset?.id) &&
            (!req.site || j.sourceSite === site?.id || j.destinationSite === site?.id),
        );
        const p = page(list, req.pageSize, req.pageToken);
        return { jobs: p.items, nextPageToken: p.next };
      },
      getJob: (req, ctx) => {
        this.authorize(ctx);
        return this.job(req.job);
      },
      async *watchJob(req, ctx) {
        self.authorize(ctx);
        const job = self.job(req.job);
        let changed: () => void = () => {};
        const notify = () => changed();
        const set = self.watchers.get(job.id) ?? new Set();
        self.watchers.set(job.id, set);
        set.add(notify);
        try {
          for (;;) {
            const wake = new Promise<void>((resolve) => (changed = resolve));
            const header = ctx.requestHeader.get("authorization") ?? "";
            if (!w.tokens.has(header.replace(/^Bearer /, ""))) {
              throw new ConnectError("token revoked", Code.Unauthenticated);
            }
            const rate = self.rates.get(job.id);
            yield create(JobProgressSchema, {
              job: { ...job },
              bytesPerSec: rate?.bytesPerSec ?? 0,
              eta: rate?.etaSeconds !== undefined ? { seconds: BigInt(rate.etaSeconds), nanos: 0 } : undefined,
            }) as JobProgress;
            if (TERMINAL.includes(job.state)) return;
            await Promise.race([wake, new Promise((_, reject) => ctx.signal.addEventListener("abort", reject))]);
          }
        } finally {
          set.delete(notify);
        }
      },
      cancelJob: (req, ctx) => {
        this.authorize(ctx);
        const job = this.job(req.job);
        if (TERMINAL.includes(job.state)) throw new ConnectError("job: has already ended", Code.FailedPrecondition);
        this.progress(job.id, { state: JobState.CANCELLED, endTime: timestampFromDate(new Date()) });
        return job;
      },
      retryJob: (req, ctx) => {
        this.authorize(ctx);
        const job = this.job(req.job);
        this.progress(job.id, { state: JobState.QUEUED, attempt: job.attempt + 1, error: "", endTime: undefined });
        return job;
      },
      updateJob: (req, ctx) => {
        this.authorize(ctx);
        const job = this.job(req.job);
        this.progress(job.id, { bandwidthLimitBytesPerSec: req.bandwidthLimitBytesPerSec });
        return job;
      },
      listJobObjects: (req, ctx) => {
        this.authorize(ctx);
        const list = (w.objects.get(req.job) ?? []).filter((o) => !req.status || o.status === req.status);
        const p = page(list, req.pageSize, req.pageToken);
        return { objects: p.items, nextPageToken: p.next };
      },
      planMigration: (req, ctx) => {
        this.authorize(ctx);
        const dataset = w.datasets.find((d) => d.id === req.dataset || d.name === req.dataset);
        if (!dataset) throw new ConnectError(`dataset: ${req.dataset} not found`, Code.NotFound);
        const site = w.sites.find((s) => s.id === req.destinationSite || s.name === req.destinationSite);
        if (!site) throw new ConnectError(`destination_site: ${req.destinationSite} not found`, Code.NotFound);
        const f = req.filter;
        for (const glob of f?.include ?? []) {
          if (glob.includes("[") && !glob.includes("]")) {
            throw new ConnectError(`filter.include: '${glob}' is not a glob: unclosed character class`, Code.InvalidArgument);
          }
        }
        if (f && f.maxSize > 0n && f.minSize > f.maxSize) {
          throw new ConnectError("filter.max_size: must not be below filter.min_size", Code.InvalidArgument);
        }
        const objects = (w.objects.get(`plan:${dataset.id}`) ?? []).filter(
          (o) => (!f?.prefix || o.key.startsWith(f.prefix)) && o.size >= (f?.minSize ?? 0n),
        );
        if (req.dryRun) {
          return {
            created: false,
            dryRun: create(DryRunReportSchema, {
              objects: BigInt(objects.length),
              bytes: objects.reduce((a, o) => a + o.size, 0n),
              sample: objects.slice(0, 3).map((o) => ({ key: o.key, size: o.size })),
              estimatedCost: 0.42,
            }),
          };
        }
        const existing = w.jobs.find((j) => req.idempotencyKey && j.idempotencyKey === req.idempotencyKey);
        if (existing) return { job: existing, created: false };
        const job = create(JobSchema, {
          id: `job-${w.jobs.length + 1}`,
          idempotencyKey: req.idempotencyKey,
          dataset: dataset.id,
          sourceSite: dataset.site,
          destinationSite: site.id,
          state: JobState.QUEUED,
          filter: f,
          bandwidthLimitBytesPerSec: req.bandwidthLimitBytesPerSec,
          verifyMode: req.verifyMode,
        });
        w.jobs.unshift(job);
        return { job, created: true };
      },
    });
  }
}
