// Replacing a site's credentials (admins): write-only, as in the API. The fields are
// the keys the site's scheme takes; what is typed is sent once, in UpdateSite, and
// never shown again: the page only ever knows the names of the stored keys.
import { useState } from "preact/hooks";
import { useApi } from "../api";
import { describeError } from "../errors";
import type { Site } from "../gen/ferry/v1/site_pb";

/** The credential keys of each scheme (docs/sites.md). */
const KEYS: Record<string, string[]> = {
  s3: ["access_key_id", "secret_access_key", "session_token"],
  gs: ["credential"],
  azblob: ["account_key", "sas_token"],
};

export function credentialKeysOf(uri: string): string[] {
  return KEYS[uri.split("://", 1)[0]] ?? [];
}

export function SiteCredentials({ site, onChanged }: { site: Site; onChanged(): void }) {
  const api = useApi();
  const keys = credentialKeysOf(site.uri);
  const [open, setOpen] = useState(false);
  const [values, setValues] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);
  if (keys.length === 0) return null;
  const id = (key: string) => `cred-${site.id}-${key}`;

  const submit = async (e: Event) => {
    e.preventDefault();
    const credentials = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== ""));
    setBusy(true);
    setOutcome(null);
    try {
      await api.sites.updateSite({ site: { name: site.name }, updateMask: { paths: ["credentials"] }, credentials });
      const names = Object.keys(credentials);
      setOutcome({ ok: true, text: names.length ? `Stored: ${names.join(", ")}.` : "Credentials removed." });
      setValues({});
      setOpen(false);
      onChanged();
    } catch (err) {
      setOutcome({ ok: false, text: describeError(err) });
    }
    setBusy(false);
  };

  return (
    <div class="credentials">
      {outcome && (
        <p role={outcome.ok ? "status" : "alert"} class={outcome.ok ? "ok" : "error"}>
          {outcome.text}
        </p>
      )}
      {!open ? (
        <button type="button" onClick={() => setOpen(true)}>
          Replace credentials of {site.name}
        </button>
      ) : (
        <form onSubmit={submit} aria-label={`Credentials of ${site.name}`}>
          <p class="help">
            These replace every stored key; an empty field is not stored. Nothing typed here is shown again.
          </p>
          {keys.map((key) => (
            <div class="field" key={key}>
              <label for={id(key)}>{key}</label>
              <input
                id={id(key)}
                type="password"
                autoComplete="off"
                spellcheck={false}
                value={values[key] ?? ""}
                onInput={(e) => setValues({ ...values, [key]: e.currentTarget.value })}
              />
            </div>
          ))}
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              {busy ? "Storing…" : "Store credentials"}
            </button>
            <button type="button" disabled={busy} onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
