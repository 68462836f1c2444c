/**
 * Types of the messages between the kernel and this extension on comm target
 * `k2nb`. The protocol is described once, in docs/comm-protocol.md.
 */

/** The comm target name, shared with the kernel. */
export const COMM_TARGET = 'k2nb';

/** The protocol version this extension speaks. */
export const PROTOCOL_VERSION = 1;

/** What the extension can do, announced in its hello. */
export const FEATURES = ['real_cells', 'approval_dialog'] as const;

/** The extension's hello to the kernel (frontend to kernel). */
export interface IHello {
  type: 'hello';
  version: number;
  features: string[];
}

/**
 * The kernel asks the frontends attached to it to say hello (sent when k2nb is
 * loaded from a cell, after the connect-time hello found no target).
 */
export interface IHelloRequest {
  type: 'hello_request';
  version: number;
}

/** Whether a comm's opening data is the kernel's request for a hello. */
export function isHelloRequest(data: unknown): data is IHelloRequest {
  return (
    typeof data === 'object' &&
    data !== null &&
    (data as { type?: unknown }).type === 'hello_request'
  );
}

export interface IRunStarted {
  type: 'run_started';
  version: number;
  run_id: string;
  model: string;
  /** The `%%k2` cell's own number (In[n]); its execute reply gives it a later one. */
  execution_count?: number | null;
}

export interface IToolCallStarted {
  type: 'tool_call_started';
  run_id: string;
  step: number;
  call_id: string;
  name: string;
  code: string;
  model: string;
  /** The count IPython will give the call's cell (known once it finishes). */
  execution_count: number | null;
}

export interface IToolCallFinished {
  type: 'tool_call_finished';
  run_id: string;
  call_id: string;
  execution_count: number | null;
  /** `ok`, `error`, `timeout`, `interrupted` or `skipped` (the cell goes away). */
  status: string;
}

/** Sent just before the kernel asks, on stdin, whether to make this call. */
export interface IApprovalRequested {
  type: 'approval_request';
  run_id: string;
  step: number;
  call_id: string;
  /** The tool; absent means `code_interpreter`. */
  name?: string;
  /** The code of a code_interpreter call. */
  code?: string;
  /** The call's JSON arguments, as text. */
  arguments?: string;
  /** Why the call was flagged. */
  reasons?: string[];
}

export interface IRunFinished {
  type: 'run_finished';
  run_id: string;
  stop_reason: string;
}

export type K2Message =
  | IRunStarted
  | IToolCallStarted
  | IToolCallFinished
  | IApprovalRequested
  | IRunFinished;

/** Provenance written into an inserted cell's `metadata.k2nb`. */
export interface IK2CellMetadata {
  run_id: string;
  step: number;
  call_id: string;
  model: string;
  /** The id of the `%%k2` cell that produced this cell. */
  source_cell: string;
}

/** The hello this extension sends. */
export function hello(): IHello {
  return { type: 'hello', version: PROTOCOL_VERSION, features: [...FEATURES] };
}

/** Read `metadata.k2nb` from a cell's metadata, if it is there and well formed. */
export function readK2Metadata(
  metadata: Record<string, unknown> | undefined
): IK2CellMetadata | null {
  const value = metadata?.['k2nb'] as Partial<IK2CellMetadata> | undefined;
  if (!value || typeof value !== 'object' || typeof value.run_id !== 'string') {
    return null;
  }
  return value as IK2CellMetadata;
}
