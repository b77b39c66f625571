// Enum values as a person reads them, and the select options that filter by them.
import { Tier } from "../gen/ferry/v1/common_pb";
import { JobState } from "../gen/ferry/v1/job_pb";
import { enumLabel } from "../format";

export const TERMINAL_STATES = [JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED];

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state);
}

export const JOB_STATES = [
  JobState.QUEUED,
  JobState.COPYING,
  JobState.VERIFYING,
  JobState.SWITCHING,
  JobState.COMPLETED,
  JobState.FAILED,
  JobState.CANCELLED,
];

export const TIERS = [Tier.HOT, Tier.WARM, Tier.COLD];

export function jobStateName(state: JobState): string {
  return enumLabel(JobState, state);
}

/** The JobState a lowercase name (from a URL) stands for; UNSPECIFIED when none. */
export function jobStateFromName(name: string | null): JobState {
  return JOB_STATES.find((s) => jobStateName(s) === name) ?? JobState.UNSPECIFIED;
}

export function tierName(tier: Tier): string {
  return enumLabel(Tier, tier);
}

export function tierFromName(name: string | null): Tier {
  return TIERS.find((t) => tierName(t) === name) ?? Tier.UNSPECIFIED;
}

export function JobStateBadge({ state }: { state: JobState }) {
  const name = jobStateName(state);
  return <span class={`badge state-${name}`}>{name}</span>;
}

export function TierBadge({ tier }: { tier: Tier }) {
  const name = tierName(tier);
  return <span class={`badge tier-${name}`}>{name}</span>;
}
