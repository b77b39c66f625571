// Who is signed in. The token lives in sessionStorage (this tab only, gone when it
// closes); what the token may do comes from WhoAmI, never from the token itself. Views
// ask `can(...)` before showing a control, so a viewer sees no button it may not press;
// the control plane checks again on every call.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { Role, type WhoAmIResponse } from "./gen/ferry/v1/admin_pb";

const TOKEN_KEY = "ferry.console.token";

export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: nothing was kept.
  }
}

/** What the console lets a role do; each level includes the ones before it. */
export type Ability = "view" | "operate" | "administer";

const LEVEL: Record<Ability, number> = { view: 1, operate: 2, administer: 3 };

function level(role: Role): number {
  switch (role) {
    case Role.VIEWER:
      return 1;
    case Role.OPERATOR:
      return 2;
    case Role.ADMIN:
      return 3;
    default:
      return 0;
  }
}

export function roleCan(role: Role, ability: Ability): boolean {
  return level(role) >= LEVEL[ability];
}

export function roleName(role: Role): string {
  switch (role) {
    case Role.VIEWER:
      return "viewer";
    case Role.OPERATOR:
      return "operator";
    case Role.ADMIN:
      return "admin";
    case Role.AGENT:
      return "agent";
    default:
      return "no role";
  }
}

export const SESSION_ENDED =
  "Your session ended: the token is expired or revoked. Sign in again.";

export interface Session {
  me: WhoAmIResponse;
  can(ability: Ability): boolean;
  signOut(): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}
