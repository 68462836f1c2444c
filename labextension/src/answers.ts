/**
 * What the approval dialog reads from the kernel's prompt and request, and the
 * answer it sends back: plain functions, no DOM. The messages are described in
 * docs/comm-protocol.md.
 */
import type { IApprovalRequested } from './protocol';

/** The tool whose calls run code in the kernel (and become cells). */
export const CODE_TOOL = 'code_interpreter';

const PROMPT = /^\[k2nb:([^\]]+)\]/;

/**
 * The call id of a k2nb approval prompt (`[k2nb:<call id>] ...`), or null for
 * any other input request.
 */
export function approvalCallId(prompt: string): string | null {
  const match = PROMPT.exec(prompt);
  return match ? match[1] : null;
}

/** What an approval is about: code to run, or a call of another tool. */
export type ApprovalSubject =
  | { kind: 'code'; code: string }
  | { kind: 'tool'; name: string; arguments: string };

/**
 * The subject of an `approval_request`. A request without `name` comes from a
 * kernel that only asks about code_interpreter calls.
 */
export function approvalSubject(request: IApprovalRequested): ApprovalSubject {
  const name = request.name || CODE_TOOL;
  if (name !== CODE_TOOL) {
    return { kind: 'tool', name, arguments: request.arguments ?? '{}' };
  }
  if (typeof request.code === 'string') {
    return { kind: 'code', code: request.code };
  }
  return { kind: 'code', code: codeInArguments(request.arguments) };
}

function codeInArguments(text: string | undefined): string {
  const value = parseObject(text ?? '');
  return typeof value?.code === 'string' ? value.code : '';
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** A call's JSON arguments indented for reading; text that is not JSON as it is. */
export function prettyArguments(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function compactJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

/**
 * Why edited arguments cannot be sent, or null when they are a JSON object
 * (what the kernel passes to the tool).
 */
export function argumentsProblem(text: string): string | null {
  try {
    JSON.parse(text);
  } catch (error) {
    return `The arguments are not valid JSON: ${(error as Error).message}`;
  }
  return parseObject(text)
    ? null
    : 'The arguments must be a JSON object ({...}).';
}

/**
 * Why an edit cannot be sent, or null: code must not be empty (the kernel
 * would ask again), another tool's arguments must be a JSON object.
 */
export function editProblem(
  subject: ApprovalSubject,
  text: string
): string | null {
  if (subject.kind === 'tool') {
    return argumentsProblem(text);
  }
  return text.trim()
    ? null
    : 'The code is empty: write the code to run, or Skip.';
}

/** What the user decided in the dialog. */
export type ApprovalDecision =
  | { action: 'run' }
  | { action: 'all' }
  | { action: 'skip'; reason: string }
  /** `text` is the edited code, or the edited JSON arguments of another tool. */
  | { action: 'edit'; text: string };

/**
 * The JSON text the dialog sends as the reply to the kernel's prompt.
 *
 * For code the reply repeats the code the decision is about (the edited code
 * for an edit); for another tool an edit carries the arguments, compacted.
 */
export function approvalAnswer(
  subject: ApprovalSubject,
  decision: ApprovalDecision
): string {
  const answer: Record<string, string> = { action: decision.action };
  if (subject.kind === 'code') {
    answer.code = decision.action === 'edit' ? decision.text : subject.code;
  } else if (decision.action === 'edit') {
    answer.arguments = compactJson(decision.text);
  }
  if (decision.action === 'skip' && decision.reason.trim()) {
    answer.reason = decision.reason.trim();
  }
  return JSON.stringify(answer);
}
