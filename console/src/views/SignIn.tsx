// Sign-in with a bearer token (`ferry token create NAME --role viewer` makes one). The
// token is checked with WhoAmI before it is kept, so a mistyped or revoked token is
// refused here, with the server's reason, rather than on the first page.
import { Code } from "@connectrpc/connect";
import { useState } from "preact/hooks";
import { useApi } from "../api";
import { describeError, isCode } from "../errors";
import { Role, type WhoAmIResponse } from "../gen/ferry/v1/admin_pb";

export interface SignInProps {
  /** Why the user is here: the session ended, or they signed out. */
  notice?: string;
  /** A failure checking the token kept from before (the control plane unreachable). */
  error?: unknown;
  onSignedIn(token: string, me: WhoAmIResponse): void;
}

export function SignInView({ notice, error, onSignedIn }: SignInProps) {
  const api = useApi();
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(error ? describeError(error) : null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const secret = token.trim();
    if (!secret) {
      setProblem("Enter a token.");
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      const me = await api.admin.whoAmI({}, { headers: { authorization: `Bearer ${secret}` } });
      if (me.role === Role.AGENT) {
        setProblem("This is an agent's token. The console needs a viewer, operator or admin token.");
      } else if (me.role === Role.UNSPECIFIED) {
        setProblem("This token has no role the console knows. Use a viewer, operator or admin token.");
      } else {
        onSignedIn(secret, me);
        return;
      }
    } catch (err) {
      setProblem(
        isCode(err, Code.Unauthenticated)
          ? `The control plane does not accept this token. ${describeError(err)}`
          : describeError(err),
      );
    }
    setBusy(false);
  };

  return (
    <section class="card narrow">
      <h1>Sign in to Ferry</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit}>
        <label for="token">Access token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-describedby="token-help"
          aria-invalid={problem ? true : undefined}
        />
        <p id="token-help" class="help">
          A token made with <code>ferry token create NAME --role viewer</code> (or operator, or admin). It is kept in
          this tab only, until you sign out or close it.
        </p>
        {problem && (
          <p class="error" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </section>
  );
}
