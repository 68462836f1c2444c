import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

/** What the dialog needs to know about the code it asks about. */
export interface IApprovalRequest {
  step: number;
  call_id: string;
  code: string;
}

/** What the user decided; sent back to the kernel as the stdin reply (JSON). */
export interface IApprovalReply {
  action: 'run' | 'skip' | 'all' | 'edit';
  code: string;
  reason?: string;
}

/**
 * The approval prompts the kernel may send on stdin:
 * - `[k2nb:<call id>] ...` (k2nb.ui.frontend.ask_approval): announced by an
 *   `approval_request` comm message, answered with one JSON reply;
 * - `k2nb approval · ...` (k2nb.tools.approval, inside the tool call): about
 *   the running call, answered as a person would type (y / a / n / e), with
 *   the follow-up prompts for a reason or the edited code answered too.
 */
export type ApprovalPrompt =
  | { kind: 'json'; callId: string }
  | { kind: 'text' };

const JSON_PROMPT = /^\[k2nb:([^\]]+)\]/;
const TEXT_PROMPT = 'k2nb approval';

/** What kind of approval prompt this is, or null for any other input request. */
export function approvalPrompt(prompt: string): ApprovalPrompt | null {
  const match = JSON_PROMPT.exec(prompt);
  if (match) {
    return { kind: 'json', callId: match[1] };
  }
  return prompt.startsWith(TEXT_PROMPT) ? { kind: 'text' } : null;
}

/** A typed answer and the answer to the follow-up prompt it leads to. */
export interface ITextAnswer {
  answer: string;
  followUp: { prompt: string; value: string } | null;
}

/** The answers a person would type for this decision (k2nb.tools.approval). */
export function textAnswer(reply: IApprovalReply): ITextAnswer {
  switch (reply.action) {
    case 'run':
      return { answer: 'y', followUp: null };
    case 'all':
      return { answer: 'a', followUp: null };
    case 'edit':
      return {
        answer: 'e',
        // One line: the kernel turns "\n" back into new lines.
        followUp: { prompt: 'Replacement code', value: reply.code.replace(/\n/g, '\\n') }
      };
    default:
      return {
        answer: 'n',
        followUp: { prompt: 'Reason for the agent', value: reply.reason ?? '' }
      };
  }
}

function codeBody(request: IApprovalRequest, editable: boolean): Widget {
  const node = document.createElement('div');
  node.className = 'k2nb-approval';
  const intro = document.createElement('p');
  intro.textContent = editable
    ? 'Edit the code, then run it in your kernel:'
    : `Step ${request.step}: the agent wants to run this code in your kernel.`;
  const code = document.createElement('textarea');
  code.className = 'k2nb-approval-code';
  code.value = request.code;
  code.readOnly = !editable;
  code.spellcheck = false;
  code.rows = Math.min(20, Math.max(4, request.code.split('\n').length + 1));
  node.append(intro, code);
  return new Widget({ node });
}

/**
 * A pending question to the user; `cancel()` closes it unanswered (the run
 * ended or the kernel went away while it was open).
 */
export class ApprovalDialog {
  constructor(request: IApprovalRequest) {
    this._request = request;
  }

  /** Ask; resolves with the decision, or null when cancelled. */
  async ask(): Promise<IApprovalReply | null> {
    const request = this._request;
    const first = await this._show(
      new Dialog({
        title: 'Run the agent’s code?',
        body: codeBody(request, false),
        buttons: [
          Dialog.cancelButton({ label: 'Skip' }),
          Dialog.okButton({ label: 'Edit', displayType: 'default' }),
          Dialog.okButton({ label: 'Run all', displayType: 'default' }),
          Dialog.okButton({ label: 'Run' })
        ]
      })
    );
    if (first === null) {
      return null;
    }
    switch (first.button.label) {
      case 'Run':
        return { action: 'run', code: request.code };
      case 'Run all':
        return { action: 'all', code: request.code };
      case 'Edit':
        return this._edit();
      default:
        return { action: 'skip', code: request.code };
    }
  }

  cancel(): void {
    this._cancelled = true;
    this._current?.reject();
  }

  private async _edit(): Promise<IApprovalReply | null> {
    const body = codeBody(this._request, true);
    const result = await this._show(
      new Dialog({
        title: 'Edit the agent’s code',
        body,
        buttons: [
          Dialog.cancelButton({ label: 'Skip' }),
          Dialog.okButton({ label: 'Run edited' })
        ],
        focusNodeSelector: 'textarea'
      })
    );
    if (result === null) {
      return null;
    }
    if (!result.button.accept) {
      return { action: 'skip', code: this._request.code };
    }
    const code = body.node.querySelector('textarea')?.value ?? this._request.code;
    return { action: 'edit', code };
  }

  private async _show(
    dialog: Dialog<unknown>
  ): Promise<Dialog.IResult<unknown> | null> {
    if (this._cancelled) {
      dialog.dispose();
      return null;
    }
    this._current = dialog;
    try {
      const result = await dialog.launch();
      return this._cancelled ? null : result;
    } finally {
      this._current = null;
      dialog.dispose();
    }
  }

  private _request: IApprovalRequest;
  private _current: Dialog<unknown> | null = null;
  private _cancelled = false;
}
