// Loading server state into a view: one call (`useLoad`), or a list read page by page
// with the server's page tokens (`usePages`). A view that goes away, or asks again
// before the answer came, aborts the call it no longer needs.
import { useEffect, useState } from "preact/hooks";
import { isAbort } from "./errors";

export interface Loaded<T> {
  data?: T;
  error: unknown;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error: unknown; loading: boolean }>({
    error: null,
    loading: true,
  });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(abort.signal).then(
      (data) => {
        if (!abort.signal.aborted) setState({ data, error: null, loading: false });
      },
      (error) => {
        if (!abort.signal.aborted && !isAbort(error)) setState({ error, loading: false });
      },
    );
    return () => abort.abort();
  }, [...deps, generation]);
  return { ...state, reload: () => setGeneration((g) => g + 1) };
}

export interface Page<T> {
  items: T[];
  /** The server's next_page_token; empty on the last page. */
  next: string;
}

export interface Paged<T> extends Loaded<T[]> {
  /** 1-based number of the page shown. */
  page: number;
  hasPrev: boolean;
  hasNext: boolean;
  prev(): void;
  next(): void;
}

/**
 * A list read one page at a time. Pages visited are remembered by their tokens, so
 * "Previous" goes back without the server paging backwards; a change of `deps`
 * (the filters) starts again from the first page.
 */
export function usePages<T>(
  fetch: (pageToken: string, signal: AbortSignal) => Promise<Page<T>>,
  deps: (string | number | boolean)[],
): Paged<T> {
  const key = JSON.stringify(deps);
  const [nav, setNav] = useState({ key, tokens: [""] });
  const tokens = nav.key === key ? nav.tokens : [""];
  const token = tokens[tokens.length - 1];
  const loaded = useLoad((signal) => fetch(token, signal), [key, token]);
  const nextToken = loaded.loading ? "" : (loaded.data?.next ?? "");
  return {
    data: loaded.data?.items,
    error: loaded.error,
    loading: loaded.loading,
    reload: loaded.reload,
    page: tokens.length,
    hasPrev: tokens.length > 1,
    hasNext: nextToken !== "",
    prev: () => setNav({ key, tokens: tokens.slice(0, -1) }),
    next: () => {
      if (nextToken) setNav({ key, tokens: [...tokens, nextToken] });
    },
  };
}

/**
 * Every item of a list, page after page, up to `limit` items: for the short lists a
 * page needs whole (sites, a dataset picker). `truncated` says the limit cut it.
 */
export async function readAll<T>(
  fetch: (pageToken: string) => Promise<Page<T>>,
  limit: number,
): Promise<{ items: T[]; truncated: boolean }> {
  const items: T[] = [];
  let token = "";
  do {
    const page = await fetch(token);
    items.push(...page.items);
    token = page.next;
  } while (token !== "" && items.length < limit);
  return { items: items.slice(0, limit), truncated: token !== "" || items.length > limit };
}

/** The current time, advancing every `intervalMs` (for "12s ago"). */
export function useNow(intervalMs = 1000): Date {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const timer = setInterval(() => setNow(new Date()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
