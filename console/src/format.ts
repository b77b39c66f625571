// How numbers, sizes, rates, times and enum values read across the console. Sizes use
// binary units like the `ferry` CLI (`1.5 GiB`); typed sizes accept the CLI's grammar
// (`500MB`, `1GiB`, `1048576`) so the same figure means the same bytes in both.
import { timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";

const BINARY_UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

export function formatBytes(value: bigint | number): string {
  let n = Number(value);
  if (n < 1024) return `${n} B`;
  let unit = -1;
  while (n >= 1024 && unit < BINARY_UNITS.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${n.toFixed(n < 10 ? 2 : 1)} ${BINARY_UNITS[unit]}`;
}

/** A transfer rate; `—` when there is none to show. */
export function formatRate(bytesPerSec: number): string {
  if (!Number.isFinite(bytesPerSec) || bytesPerSec <= 0) return "—";
  return `${formatBytes(Math.round(bytesPerSec))}/s`;
}

/** A bandwidth limit, where 0 means none. */
export function formatLimit(bytesPerSec: bigint | number): string {
  return Number(bytesPerSec) === 0 ? "unlimited" : `${formatBytes(bytesPerSec)}/s`;
}

export function formatCount(value: bigint | number): string {
  return Number(value).toLocaleString("en-US");
}

/** US dollars; small amounts keep up to four decimals (`$0.0007`), as the server words them. */
export function formatDollars(value: number): string {
  const abs = Math.abs(value);
  const [min, max] = abs >= 10 ? [0, 0] : abs >= 1 || abs === 0 ? [2, 2] : [2, 4];
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: min, maximumFractionDigits: max })}`;
}

/** `2h 5m`, `3m 10s`, `42s`. */
export function formatSeconds(total: number): string {
  if (!Number.isFinite(total) || total < 0) return "—";
  const s = Math.round(total);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function durationSeconds(d: Duration | undefined): number | null {
  return d ? Number(d.seconds) + d.nanos / 1e9 : null;
}

export function toDate(ts: Timestamp | undefined): Date | null {
  return ts ? timestampDate(ts) : null;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** Local time, `2025-03-14 09:26:53`; `—` when unset. */
export function formatTime(ts: Timestamp | Date | undefined | null): string {
  const d = ts instanceof Date ? ts : ts ? timestampDate(ts) : null;
  if (!d) return "—";
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** `12s ago`, `3m 4s ago`. */
export function formatAgo(ts: Timestamp | undefined, now: Date): string {
  const d = toDate(ts);
  if (!d) return "never";
  return `${formatSeconds(Math.max(0, (now.getTime() - d.getTime()) / 1000))} ago`;
}

/**
 * The lowercase name of a generated enum's value without its prefix
 * (`JobState.COPYING` → `copying`); `—` for the unspecified zero.
 */
export function enumLabel(enumObject: Record<number, string>, value: number): string {
  if (value === 0) return "—";
  const name = enumObject[value];
  return name ? name.toLowerCase().replace(/_/g, " ") : `unknown (${value})`;
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** A whole number of bytes with an optional unit, as the CLI reads it. */
export function parseBytes(input: string): bigint {
  const text = input.trim();
  const match = /^(\d+)\s*([a-zA-Z]*)$/.exec(text);
  const factor = match ? BYTE_UNITS[match[2].toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new Error(`"${input}" is not a size: a whole number of bytes, optionally with a unit (500MB, 1GiB)`);
  }
  return BigInt(match[1]) * BigInt(factor);
}

/** Bytes per second, as a size optionally followed by `/s`; empty means 0 (none). */
export function parseRate(input: string): bigint {
  const text = input.trim().replace(/\/s$/i, "");
  if (text === "") return 0n;
  try {
    return parseBytes(text);
  } catch {
    throw new Error(`"${input}" is not a rate: bytes per second, optionally with a unit (20MB, 512KiB/s)`);
  }
}

/** Job duration so far or in all: end (or now) minus start. */
export function elapsedSeconds(start: Timestamp | undefined, end: Timestamp | undefined, now: Date): number | null {
  const s = toDate(start);
  if (!s) return null;
  const e = toDate(end) ?? now;
  return Math.max(0, (e.getTime() - s.getTime()) / 1000);
}

/** `2025-03-14T09:26` in local time, the value a datetime-local field holds. */
export function toLocalInput(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local field's value as a Date; null when empty. */
export function fromLocalInput(value: string): Date | null {
  if (!value) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error(`"${value}" is not a date and time`);
  return d;
}
