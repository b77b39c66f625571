// The options of a site picker: a first, empty choice, then every site by name (the
// value the API takes), with its tier when the choice depends on it.
import type { Site } from "../gen/ferry/v1/site_pb";
import { tierName } from "./labels";

export function SiteOptions({ sites, empty, withTier = false }: { sites?: Site[]; empty: string; withTier?: boolean }) {
  return (
    <>
      <option value="">{empty}</option>
      {(sites ?? []).map((s) => (
        <option key={s.id} value={s.name}>
          {withTier ? `${s.name} (${tierName(s.tier)})` : s.name}
        </option>
      ))}
    </>
  );
}
