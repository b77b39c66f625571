// The console's only way to the control plane: generated ferry.v1 clients over one
// transport (gRPC-Web in the browser, an in-memory router in tests). The interceptor
// here is the one place that attaches the bearer token and notices that the control
// plane no longer accepts it, for unary calls and for streams alike.
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { AccessEventService } from "./gen/ferry/v1/access_pb";
import { AdminService } from "./gen/ferry/v1/admin_pb";
import { AgentService } from "./gen/ferry/v1/agent_pb";
import { DatasetService } from "./gen/ferry/v1/dataset_pb";
import { JobService } from "./gen/ferry/v1/job_pb";
import { PolicyService } from "./gen/ferry/v1/policy_pb";
import { RecommendationService } from "./gen/ferry/v1/recommendation_pb";
import { SiteService } from "./gen/ferry/v1/site_pb";

export interface Api {
  sites: Client<typeof SiteService>;
  datasets: Client<typeof DatasetService>;
  policies: Client<typeof PolicyService>;
  jobs: Client<typeof JobService>;
  access: Client<typeof AccessEventService>;
  recommendations: Client<typeof RecommendationService>;
  agents: Client<typeof AgentService>;
  admin: Client<typeof AdminService>;
}

export function createApi(transport: Transport): Api {
  return {
    sites: createClient(SiteService, transport),
    datasets: createClient(DatasetService, transport),
    policies: createClient(PolicyService, transport),
    jobs: createClient(JobService, transport),
    access: createClient(AccessEventService, transport),
    recommendations: createClient(RecommendationService, transport),
    agents: createClient(AgentService, transport),
    admin: createClient(AdminService, transport),
  };
}

/** Where the interceptor reads the signed-in token and reports that it was refused. */
export interface Credentials {
  token(): string | null;
  /** The control plane answered UNAUTHENTICATED to a call made with `token()`. */
  refused(error: ConnectError): void;
}

/**
 * Adds `authorization: Bearer <token>` to every call that does not carry its own (the
 * sign-in form checks a candidate token with its own header). An UNAUTHENTICATED
 * answer to a call made with the session's token, whether it ends a unary call or a
 * stream midway (a revoked token ends open streams), is reported to `refused`; the
 * error still reaches the caller.
 */
export function bearerInterceptor(credentials: Credentials): Interceptor {
  return (next) => async (req) => {
    let usesSession = false;
    if (!req.header.has("authorization")) {
      const token = credentials.token();
      if (token) {
        req.header.set("authorization", `Bearer ${token}`);
        usesSession = true;
      }
    }
    const report = (error: unknown) => {
      if (usesSession && error instanceof ConnectError && error.code === Code.Unauthenticated) {
        credentials.refused(error);
      }
    };
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: watchStream(res.message, report) };
    } catch (error) {
      report(error);
      throw error;
    }
  };
}

async function* watchStream<T>(messages: AsyncIterable<T>, report: (e: unknown) => void) {
  try {
    yield* messages;
  } catch (error) {
    report(error);
    throw error;
  }
}

/** gRPC-Web to the control plane that served this page: same origin, so no CORS. */
export function browserTransport(credentials: Credentials): Transport {
  return createGrpcWebTransport({
    baseUrl: location.origin,
    interceptors: [bearerInterceptor(credentials)],
  });
}

export const ApiContext = createContext<Api | null>(null);

export function useApi(): Api {
  const api = useContext(ApiContext);
  if (!api) throw new Error("useApi outside an ApiContext provider");
  return api;
}
