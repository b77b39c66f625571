// Hash routing: every page is `#/path?query`, so any view (with its filters) can be
// bookmarked and reloaded without the server knowing a route; the control plane
// serves only `/`, `/app.js` and `/app.css`.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** Decoded path segments: `#/datasets/genome` → `["datasets", "genome"]`. */
  path: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const text = hash.replace(/^#/, "");
  const [pathPart, queryPart = ""] = text.split("?", 2);
  const path = pathPart
    .split("/")
    .filter((s) => s !== "")
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { path, query: new URLSearchParams(queryPart) };
}

/** A link target: `href("/jobs", { state: "failed" })` → `#/jobs?state=failed`. */
export function href(path: string, query: Record<string, string | undefined | null> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) params.set(k, v);
  const q = params.toString();
  return `#${path}${q ? `?${q}` : ""}`;
}

/** A path segment from a name or id, escaped. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

export function navigate(target: string): void {
  if (location.hash !== target) location.hash = target;
}

export function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return parseHash(hash);
}
