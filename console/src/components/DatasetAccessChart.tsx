// Hourly reads and bytes read of one dataset as bar charts drawn in inline SVG (no
// chart library, nothing fetched). Hours without a record are zero: the aggregator
// writes a row only for hours that saw an access.
import type { HourlyAccess } from "../gen/ferry/v1/access_pb";
import { formatBytes, formatCount, formatTime, toDate } from "../format";

const HOUR_MS = 3_600_000;
const WIDTH = 720;
const HEIGHT = 120;

/** One value per hour from `start` (rounded down to the hour) to `end`. */
export function hourlySeries(
  hours: HourlyAccess[],
  start: Date,
  end: Date,
  pick: (h: HourlyAccess) => number,
): number[] {
  const first = Math.floor(start.getTime() / HOUR_MS);
  const count = Math.max(1, Math.ceil(end.getTime() / HOUR_MS) - first);
  const series = new Array<number>(count).fill(0);
  for (const h of hours) {
    const at = toDate(h.hour);
    if (!at) continue;
    const i = Math.floor(at.getTime() / HOUR_MS) - first;
    if (i >= 0 && i < count) series[i] += pick(h);
  }
  return series;
}

function BarChart({
  title,
  series,
  format,
  start,
  end,
}: {
  title: string;
  series: number[];
  format(n: number): string;
  start: Date;
  end: Date;
}) {
  const max = Math.max(0, ...series);
  const total = series.reduce((a, b) => a + b, 0);
  const barWidth = WIDTH / series.length;
  let path = "";
  if (max > 0) {
    series.forEach((value, i) => {
      if (value <= 0) return;
      const h = Math.max(1, (value / max) * HEIGHT);
      const x = i * barWidth;
      path += `M${x.toFixed(2)} ${HEIGHT}V${(HEIGHT - h).toFixed(2)}h${Math.max(barWidth * 0.8, 0.5).toFixed(2)}V${HEIGHT}Z`;
    });
  }
  const summary = `${title}: ${format(total)} in all, at most ${format(max)} in one hour.`;
  return (
    <figure class="chart">
      <figcaption>
        <strong>{title}</strong> <span class="muted">{format(total)} in all</span>
      </figcaption>
      <div class="chart-body">
        <span class="axis-max" aria-hidden="true">
          {format(max)}
        </span>
        <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={summary}>
          <line x1="0" y1={HEIGHT - 0.5} x2={WIDTH} y2={HEIGHT - 0.5} class="baseline" />
          {path && <path d={path} class="bars" />}
        </svg>
      </div>
      <div class="axis-x" aria-hidden="true">
        <span>{formatTime(start).slice(0, 16)}</span>
        <span>{formatTime(end).slice(0, 16)}</span>
      </div>
    </figure>
  );
}

export function DatasetAccessChart({ hours, start, end }: { hours: HourlyAccess[]; start: Date; end: Date }) {
  const reads = hourlySeries(hours, start, end, (h) => Number(h.reads));
  const bytes = hourlySeries(hours, start, end, (h) => Number(h.bytesRead));
  return (
    <div class="charts">
      <BarChart title="Reads per hour" series={reads} format={formatCount} start={start} end={end} />
      <BarChart title="Bytes read per hour" series={bytes} format={formatBytes} start={start} end={end} />
    </div>
  );
}
