// How a view says it is waiting or that a call failed. Failures show the server's own
// message (see errors.ts) and are announced to screen readers.
import type { ComponentChildren } from "preact";
import { describeError } from "../errors";

export function ErrorNote({ error, context }: { error: unknown; context?: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {context ? `${context}: ` : ""}
      {describeError(error)}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** "Nothing here" in a table's place, saying what was looked for. */
export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** In place of a page the signed-in role may not use. */
export function Forbidden({ what, role }: { what: string; role: string }) {
  return (
    <section>
      <h1>Not available</h1>
      <p>
        {what} needs the {role} role; you are signed in with a lower one.
      </p>
    </section>
  );
}
