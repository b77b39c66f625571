// How a failed call reads on screen: the server's own message, prefixed with what kind
// of failure it was. INVALID_ARGUMENT messages start with the field's path
// (`filter.min_size: must not exceed max_size`), which forms use to place the message
// next to the field.
import { Code, ConnectError } from "@connectrpc/connect";

const KINDS: Partial<Record<Code, string>> = {
  [Code.Canceled]: "Cancelled",
  [Code.Unknown]: "Error",
  [Code.InvalidArgument]: "Invalid request",
  [Code.DeadlineExceeded]: "Timed out",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.PermissionDenied]: "Not allowed",
  [Code.ResourceExhausted]: "Too many requests",
  [Code.FailedPrecondition]: "Not possible now",
  [Code.Aborted]: "Aborted",
  [Code.OutOfRange]: "Out of range",
  [Code.Unimplemented]: "Not implemented",
  [Code.Internal]: "Server error",
  [Code.Unavailable]: "Control plane unavailable",
  [Code.DataLoss]: "Data loss",
  [Code.Unauthenticated]: "Not signed in",
};

/** One line for a failed call: `Not allowed: needs the operator role`. */
export function describeError(error: unknown): string {
  if (error instanceof ConnectError) {
    const kind = KINDS[error.code] ?? "Error";
    return error.rawMessage ? `${kind}: ${error.rawMessage}` : kind;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

export function isCode(error: unknown, code: Code): boolean {
  return error instanceof ConnectError && error.code === code;
}

/** A call that was abandoned on purpose (the view went away, or asked again). */
export function isAbort(error: unknown): boolean {
  return (
    isCode(error, Code.Canceled) || (error instanceof Error && error.name === "AbortError")
  );
}

export interface FieldError {
  /** The request field's path as the server names it: `filter.min_size`. */
  field: string;
  message: string;
}

/** The field an INVALID_ARGUMENT answer names, when it names one. */
export function fieldError(error: unknown): FieldError | null {
  if (!(error instanceof ConnectError) || error.code !== Code.InvalidArgument) return null;
  const match = /^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*|\[\d+\])*): (.+)$/s.exec(error.rawMessage);
  return match ? { field: match[1], message: match[2] } : null;
}
