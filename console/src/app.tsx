// The console's shell: who is signed in, the header and navigation, and which view the
// address shows. Signed out, every address shows the sign-in form and, once signed in,
// the page that was asked for; an UNAUTHENTICATED answer to any call ends the session.
import { Code, type Transport } from "@connectrpc/connect";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiContext, createApi, type Credentials } from "./api";
import type { WhoAmIResponse } from "./gen/ferry/v1/admin_pb";
import { Forbidden } from "./components/feedback";
import { isCode } from "./errors";
import { href, navigate, useRoute, type Route } from "./router";
import {
  SESSION_ENDED,
  SessionContext,
  forgetToken,
  roleCan,
  roleName,
  storeToken,
  storedToken,
  type Session,
} from "./session";
import { AgentsView } from "./views/Agents";
import { AuditView } from "./views/Audit";
import { DatasetView } from "./views/Dataset";
import { DatasetsView } from "./views/Datasets";
import { JobActivity } from "./views/JobActivity";
import { JobsView } from "./views/Jobs";
import { NewJobView } from "./views/NewJob";
import { OverviewView } from "./views/Overview";
import { SignInView } from "./views/SignIn";
import { SitesView } from "./views/Sites";

type State =
  | { kind: "checking" }
  | { kind: "out"; notice?: string; error?: unknown }
  | { kind: "in"; me: WhoAmIResponse };

export interface AppProps {
  /** The transport to the control plane, given how to authenticate its calls. */
  connect(credentials: Credentials): Transport;
}

export function App({ connect }: AppProps) {
  const token = useRef<string | null>(storedToken());
  const [state, setState] = useState<State>(() => (token.current ? { kind: "checking" } : { kind: "out" }));
  const api = useMemo(
    () =>
      createApi(
        connect({
          token: () => token.current,
          refused: () => {
            token.current = null;
            forgetToken();
            setState({ kind: "out", notice: SESSION_ENDED });
          },
        }),
      ),
    [connect],
  );

  // A token kept from earlier in this tab: ask who it is before showing anything.
  useEffect(() => {
    if (state.kind !== "checking") return;
    api.admin.whoAmI({}).then(
      (me) => setState({ kind: "in", me }),
      (error) => {
        // UNAUTHENTICATED has already ended the session through `refused`.
        if (!isCode(error, Code.Unauthenticated)) setState({ kind: "out", error });
      },
    );
  }, []);

  const route = useRoute();
  const signIn = (secret: string, me: WhoAmIResponse) => {
    token.current = secret;
    storeToken(secret);
    setState({ kind: "in", me });
    if (route.path[0] === "signin") navigate("#/");
  };

  let body;
  if (state.kind === "checking") {
    body = (
      <main id="main" class="signin">
        <p role="status">Checking your session…</p>
      </main>
    );
  } else if (state.kind === "out" || route.path[0] === "signin") {
    body = (
      <main id="main" class="signin">
        <SignInView
          notice={state.kind === "out" ? state.notice : undefined}
          error={state.kind === "out" ? state.error : undefined}
          onSignedIn={signIn}
        />
      </main>
    );
  } else {
    const me = state.me;
    const session: Session = {
      me,
      can: (ability) => roleCan(me.role, ability),
      signOut: () => {
        token.current = null;
        forgetToken();
        setState({ kind: "out", notice: "You signed out." });
      },
    };
    body = (
      <SessionContext.Provider value={session}>
        <Header session={session} route={route} />
        <main id="main">
          <Page route={route} session={session} />
        </main>
      </SessionContext.Provider>
    );
  }
  return (
    <ApiContext.Provider value={api}>
      <a class="skip" href="#main" onClick={(e) => skipToMain(e)}>
        Skip to content
      </a>
      {body}
    </ApiContext.Provider>
  );
}

/** The skip link moves focus without touching the hash, which is the route. */
function skipToMain(e: MouseEvent) {
  e.preventDefault();
  const main = document.getElementById("main");
  if (main) {
    main.tabIndex = -1;
    main.focus();
  }
}

const NAV: { path: string; label: string; section: string; admin?: boolean }[] = [
  { path: "/", label: "Overview", section: "" },
  { path: "/datasets", label: "Datasets", section: "datasets" },
  { path: "/jobs", label: "Migrations", section: "jobs" },
  { path: "/sites", label: "Sites", section: "sites" },
  { path: "/agents", label: "Agents", section: "agents" },
  { path: "/audit", label: "Audit log", section: "audit", admin: true },
];

function Header({ session, route }: { session: Session; route: Route }) {
  const section = route.path[0] ?? "";
  return (
    <header class="top">
      <a class="brand" href="#/">
        Ferry
      </a>
      <nav aria-label="Main">
        <ul>
          {NAV.filter((n) => !n.admin || session.can("administer")).map((n) => (
            <li key={n.path}>
              <a href={href(n.path)} aria-current={section === n.section ? "page" : undefined}>
                {n.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <div class="who">
        <span>
          Signed in as <strong>{session.me.name}</strong> <span class="badge role">{roleName(session.me.role)}</span>
        </span>
        <button type="button" onClick={session.signOut}>
          Sign out
        </button>
      </div>
    </header>
  );
}

function Page({ route, session }: { route: Route; session: Session }) {
  const [section, id, more] = route.path;
  switch (section) {
    case undefined:
      return <OverviewView />;
    case "datasets":
      if (id && !more) return <DatasetView name={id} />;
      if (!id) return <DatasetsView query={route.query} />;
      break;
    case "jobs":
      if (id === "new" && !more) return <NewJobView query={route.query} />;
      if (id && !more) return <JobActivity id={id} />;
      if (!id) return <JobsView query={route.query} />;
      break;
    case "sites":
      if (!id) return <SitesView />;
      break;
    case "agents":
      if (!id) return <AgentsView />;
      break;
    case "audit":
      if (id) break;
      if (!session.can("administer")) {
        return <Forbidden what="The audit log" role="admin" />;
      }
      return <AuditView query={route.query} />;
  }
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        Nothing lives at <code>{location.hash}</code>. <a href="#/">Go to the overview</a>.
      </p>
    </section>
  );
}
