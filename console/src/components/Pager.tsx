// Previous / next through a list the server pages with tokens.
import type { Paged } from "../hooks";

export function Pager({ pages, label }: { pages: Paged<unknown>; label: string }) {
  if (!pages.hasPrev && !pages.hasNext) return null;
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={pages.prev} disabled={!pages.hasPrev || pages.loading}>
        Previous page
      </button>
      <span aria-live="polite">Page {pages.page}</span>
      <button type="button" onClick={pages.next} disabled={!pages.hasNext || pages.loading}>
        Next page
      </button>
    </nav>
  );
}
