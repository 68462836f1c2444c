import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  ApprovalDecision,
  ApprovalSubject,
  editProblem,
  prettyArguments
} from './answers';

/** What the dialog asks about. */
export interface IApprovalQuestion {
  step: number;
  subject: ApprovalSubject;
  /** Why the call was flagged; may be empty. */
  reasons: string[];
}

const SKIP = 0; // index of the Skip button in the first dialog

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/** The intro line: what the agent wants to do. */
function intro(question: IApprovalQuestion, editing: boolean): HTMLElement {
  const line = element('p', 'k2nb-approval-intro');
  const subject = question.subject;
  if (subject.kind === 'code') {
    line.textContent = editing
      ? 'Edit the code, then run it in your kernel:'
      : `Step ${question.step}: the agent wants to run this code in your kernel.`;
    return line;
  }
  const name = element('code', 'k2nb-approval-tool', subject.name);
  if (editing) {
    line.append('Edit the JSON arguments of ', name, ', then make the call:');
  } else {
    line.append(
      `Step ${question.step}: the agent wants to call `,
      name,
      ' with these arguments:'
    );
  }
  return line;
}

/** The dialog's body: intro, flags, the code or arguments, a skip reason. */
class ApprovalBody extends Widget {
  constructor(
    question: IApprovalQuestion,
    options: { editing: boolean; text?: string; problem?: string }
  ) {
    super({ node: element('div', 'k2nb-approval') });
    const subject = question.subject;
    this.node.appendChild(intro(question, options.editing));
    if (question.reasons.length > 0 && !options.editing) {
      const flags = element('div', 'k2nb-approval-reasons', 'Flagged: ');
      const list = element('ul', '');
      for (const reason of question.reasons) {
        list.appendChild(element('li', '', reason));
      }
      flags.appendChild(list);
      this.node.appendChild(flags);
    }
    this.text = element('textarea', 'k2nb-approval-code');
    this.text.value =
      options.text ??
      (subject.kind === 'code'
        ? subject.code
        : prettyArguments(subject.arguments));
    this.text.readOnly = !options.editing;
    this.text.spellcheck = false;
    this.text.rows = Math.min(
      20,
      Math.max(4, this.text.value.split('\n').length + 1)
    );
    this.node.appendChild(this.text);
    if (options.problem) {
      this.node.appendChild(
        element('p', 'k2nb-approval-problem', options.problem)
      );
    }
    if (!options.editing) {
      this.reason = element('input', 'k2nb-approval-reason');
      this.reason.type = 'text';
      this.reason.placeholder = 'Reason for the agent if you skip (optional)';
      this.node.appendChild(this.reason);
    }
  }

  readonly text: HTMLTextAreaElement;
  readonly reason: HTMLInputElement | null = null;
}

/**
 * A pending question to the user; `cancel()` closes it unanswered (the run
 * ended or the kernel went away while it was open).
 */
export class ApprovalDialog {
  constructor(question: IApprovalQuestion) {
    this._question = question;
  }

  /** Ask; resolves with the decision, or null when cancelled. */
  async ask(): Promise<ApprovalDecision | null> {
    const code = this._question.subject.kind === 'code';
    const body = new ApprovalBody(this._question, { editing: false });
    const dialog = new Dialog({
      title: code ? 'Run the agent’s code?' : 'Allow the agent’s tool call?',
      body,
      buttons: [
        Dialog.cancelButton({ label: 'Skip' }),
        Dialog.okButton({ label: 'Edit', displayType: 'default' }),
        Dialog.okButton({ label: 'Run all', displayType: 'default' }),
        Dialog.okButton({ label: 'Run' })
      ]
    });
    const first = await this._show(dialog, body.reason);
    if (first === null) {
      return null;
    }
    switch (first.button.label) {
      case 'Run':
        return { action: 'run' };
      case 'Run all':
        return { action: 'all' };
      case 'Edit':
        return this._edit(body.text.value);
      default:
        return { action: 'skip', reason: body.reason?.value ?? '' };
    }
  }

  cancel(): void {
    this._cancelled = true;
    this._current?.reject();
  }

  /** Ask for the edited code or arguments until they can be sent. */
  private async _edit(text: string): Promise<ApprovalDecision | null> {
    const code = this._question.subject.kind === 'code';
    let problem: string | undefined;
    for (;;) {
      const body = new ApprovalBody(this._question, {
        editing: true,
        text,
        problem
      });
      const result = await this._show(
        new Dialog({
          title: code ? 'Edit the agent’s code' : 'Edit the call’s arguments',
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
        return { action: 'skip', reason: '' };
      }
      text = body.text.value;
      problem = editProblem(this._question.subject, text) ?? undefined;
      if (problem === undefined) {
        return { action: 'edit', text };
      }
    }
  }

  /**
   * Show one dialog; null when cancelled. Enter in the skip reason field
   * skips: the dialog would otherwise take it for its default button, Run.
   */
  private async _show(
    dialog: Dialog<unknown>,
    reason: HTMLInputElement | null = null
  ): Promise<Dialog.IResult<unknown> | null> {
    if (this._cancelled) {
      dialog.dispose();
      return null;
    }
    // Capturing at the document runs before the dialog's own key handling.
    const skipOnEnter = (event: KeyboardEvent) => {
      if (reason !== null && event.key === 'Enter' && event.target === reason) {
        event.preventDefault();
        event.stopPropagation();
        dialog.resolve(SKIP);
      }
    };
    document.addEventListener('keydown', skipOnEnter, true);
    this._current = dialog;
    try {
      const result = await dialog.launch();
      return this._cancelled ? null : result;
    } finally {
      document.removeEventListener('keydown', skipOnEnter, true);
      this._current = null;
      dialog.dispose();
    }
  }

  private _question: IApprovalQuestion;
  private _current: Dialog<unknown> | null = null;
  private _cancelled = false;
}
