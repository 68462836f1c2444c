/**
 * The messages the kernel (k2nb/ui/frontend.py) sends on comm target `k2nb`.
 *
 * One comm per `%%k2` run: opened with `run_started`, then one pair of
 * `tool_call_started` / `tool_call_finished` per code_interpreter call (an
 * `approval_request` before a call when the kernel asks first), then
 * `run_finished` and a comm close. Every message travels on iopub with the
 * `%%k2` cell's execute request as parent, in order with the tool's outputs.
 */

/** The comm target name, shared with the kernel. */
export const COMM_TARGET = 'k2nb';

/** The protocol version this extension speaks. */
export const PROTOCOL_VERSION = 1;

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
  /** `ok`, `error` or `interrupted`. */
  status: string;
}

/** Sent just before the kernel asks, on stdin, whether to run this code. */
export interface IApprovalRequested {
  type: 'approval_request';
  run_id: string;
  step: number;
  call_id: string;
  code: string;
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
