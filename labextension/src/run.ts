import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { CodeCell } from '@jupyterlab/cells';
import type { ICodeCellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { type Kernel, KernelMessage } from '@jupyterlab/services';

import { approvalAnswer, approvalCallId, approvalSubject } from './answers';
import { ApprovalDialog } from './approval';
import { OutputRouter } from './outputs';
import {
  IApprovalRequested,
  IK2CellMetadata,
  IRunStarted,
  IToolCallFinished,
  IToolCallStarted,
  K2Message,
  readK2Metadata
} from './protocol';

/** The tool call whose outputs are being routed into its own cell. */
interface IActiveCall {
  callId: string;
  cellId: string;
  /** Where the next call's cell went before this one: back there if it is skipped. */
  previousAnchorId: string;
  hook: (msg: KernelMessage.IIOPubMessage) => boolean;
}

/**
 * One `%%k2` run as seen from one notebook: inserts a code cell per tool call
 * below the `%%k2` cell and routes that call's live outputs into it.
 *
 * The tool code runs inside the `%%k2` cell's execution, so its iopub messages
 * carry that execution's parent header. Between a call's `tool_call_started`
 * and `tool_call_finished` comm messages, a message hook on the `%%k2`
 * execution claims its outputs (the way the ipywidgets Output widget does).
 * The kernel delivers comm messages and outputs on one channel, in order, and
 * JupyterLab handles them one at a time, so the window is exact.
 */
export class K2Run {
  constructor(
    panel: NotebookPanel,
    kernel: Kernel.IKernelConnection,
    sourceCell: CodeCell,
    parentMsgId: string,
    start: IRunStarted
  ) {
    this._panel = panel;
    this._kernel = kernel;
    this._parentMsgId = parentMsgId;
    this._sourceCellId = sourceCell.model.id;
    this.runId = start.run_id;
    this.model = start.model;
    this._anchorId = this._sourceCellId;
    const future = sourceCell.outputArea.future;
    if (future) {
      const done = () => {
        this.end();
        this._restoreSourceCellNumber(start.execution_count);
      };
      future.done.then(done, done);
      this._answerApprovalsFromDialogs(future);
    }
    void this._offerToReplacePreviousRun();
  }

  readonly runId: string;
  readonly model: string;

  /** Whether the run has ended (finished, failed, interrupted or the kernel went away). */
  get isEnded(): boolean {
    return this._ended;
  }

  /** Handle one comm message of this run. */
  handle(message: K2Message): void {
    if (this._ended) {
      return;
    }
    switch (message.type) {
      case 'tool_call_started':
        this._startCall(message);
        break;
      case 'tool_call_finished':
        this._finishCall(message);
        break;
      case 'approval_request':
        this._approvalRequests.set(message.call_id, message);
        this._approvalArrived?.();
        break;
      case 'run_finished':
        this.end();
        break;
      default:
        break;
    }
  }

  /** Stop routing and leave no cell marked as running. Safe to call twice. */
  end(): void {
    if (this._ended) {
      return;
    }
    if (this._active) {
      this._finishCall({
        type: 'tool_call_finished',
        run_id: this.runId,
        call_id: this._active.callId,
        execution_count: null,
        status: 'interrupted'
      });
    }
    this._ended = true;
    this._dialog?.cancel();
    this._dialog = null;
    this._approvalArrived?.();
  }

  /**
   * Answer the kernel's approval prompts (stdin input requests, see
   * `approvalCallId`) with a dialog instead of the output area's text box.
   * Any other input request goes to the output area as usual.
   */
  private _answerApprovalsFromDialogs(
    future: Kernel.IShellFuture<
      KernelMessage.IExecuteRequestMsg,
      KernelMessage.IExecuteReplyMsg
    >
  ): void {
    const showInOutputArea = future.onStdin;
    future.onStdin = (msg: KernelMessage.IStdinMessage) => {
      if (KernelMessage.isInputRequestMsg(msg) && !msg.content.password) {
        const callId = approvalCallId(msg.content.prompt);
        if (callId !== null) {
          // Not awaited: the kernel's next messages must keep flowing meanwhile.
          void this._askApproval(callId, msg).then(answered => {
            if (!answered && !this._ended) {
              showInOutputArea(msg);
            }
          });
          return;
        }
      }
      return showInOutputArea(msg);
    };
  }

  /** Show the dialog and reply; false if there was nothing to ask about. */
  private async _askApproval(
    callId: string,
    msg: KernelMessage.IInputRequestMsg
  ): Promise<boolean> {
    // The prompt (stdin) may overtake the comm message (iopub) announcing what
    // it is about: give that message a moment to arrive.
    const deadline = Date.now() + 5000;
    while (
      !this._approvalRequests.has(callId) &&
      !this._ended &&
      Date.now() < deadline
    ) {
      await new Promise<void>(resolve => {
        this._approvalArrived = resolve;
        setTimeout(resolve, 250);
      });
    }
    const request = this._approvalRequests.get(callId);
    if (!request || this._ended) {
      return false;
    }
    this._approvalRequests.delete(callId);
    const subject = approvalSubject(request);
    const dialog = (this._dialog = new ApprovalDialog({
      step: request.step,
      subject,
      reasons: request.reasons ?? []
    }));
    const decision = await dialog.ask();
    if (this._dialog === dialog) {
      this._dialog = null;
    }
    if (decision === null || this._ended || this._kernel.isDisposed) {
      return true; // the run ended while asking: nobody is waiting any more
    }
    if (decision.action === 'edit' && subject.kind === 'code') {
      this._showEditedCode(callId, decision.text);
    }
    this._reply(approvalAnswer(subject, decision), msg);
    return true;
  }

  private _reply(value: string, msg: KernelMessage.IInputRequestMsg): void {
    this._kernel.sendInputReply(
      { status: 'ok', value },
      msg.header as KernelMessage.IInputReplyMsg['parent_header']
    );
  }

  /** The call's cell shows the code that really runs. */
  private _showEditedCode(callId: string, code: string): void {
    if (this._active?.callId !== callId) {
      return;
    }
    const cell = this._findCell(this._active.cellId);
    if (cell) {
      cell.sharedModel.setSource(code);
      // This is the code that runs, not an edit since: ICodeCellModel declares
      // isDirty read-only, but its model class has the setter.
      (cell as unknown as { isDirty: boolean }).isDirty = false;
    }
  }

  /**
   * Give the `%%k2` cell its own number back. IPython stored it as In[n] when
   * it started; the kernel's reply carries the number after the run's last
   * call, which belongs to that call's cell.
   */
  private _restoreSourceCellNumber(count: number | null | undefined): void {
    if (typeof count !== 'number' || this._insertedCalls === 0) {
      return;
    }
    // After CodeCell.execute has applied the reply's count (a later microtask).
    setTimeout(() => {
      const cell = this._findCell(this._sourceCellId);
      if (cell && cell.executionCount !== null && cell.executionCount > count) {
        cell.executionCount = count;
      }
    }, 0);
  }

  private _startCall(message: IToolCallStarted): void {
    if (this._active) {
      // A start without a finish: close the previous call first.
      this._finishCall({
        type: 'tool_call_finished',
        run_id: this.runId,
        call_id: this._active.callId,
        execution_count: null,
        status: 'interrupted'
      });
    }
    const cellModel = this._insertCell(message);
    if (!cellModel) {
      return;
    }
    this._insertedCalls += 1;
    cellModel.trusted = true;
    cellModel.executionState = 'running';
    const router = new OutputRouter(cellModel.outputs);
    // Returning false stops the %%k2 cell's own output area from seeing it.
    const hook = (msg: KernelMessage.IIOPubMessage): boolean =>
      !router.route(msg);
    this._kernel.registerMessageHook(this._parentMsgId, hook);
    this._active = {
      callId: message.call_id,
      cellId: cellModel.id,
      previousAnchorId: this._anchorId,
      hook
    };
    this._anchorId = cellModel.id;
  }

  private _finishCall(message: IToolCallFinished): void {
    const active = this._active;
    if (!active || active.callId !== message.call_id) {
      return;
    }
    this._active = null;
    if (!this._kernel.isDisposed) {
      this._kernel.removeMessageHook(this._parentMsgId, active.hook);
    }
    const cellModel = this._findCell(active.cellId);
    if (!cellModel) {
      return;
    }
    if (message.status === 'skipped') {
      // The user declined to run it: it never became a cell of the notebook.
      this._deleteCell(active.cellId);
      if (this._anchorId === active.cellId) {
        this._anchorId = active.previousAnchorId;
      }
      return;
    }
    if (message.execution_count !== null) {
      cellModel.executionCount = message.execution_count;
    }
    cellModel.executionState = 'idle';
  }

  /** Insert the call's cell below the last cell of this run (or the %%k2 cell). */
  private _insertCell(message: IToolCallStarted): ICodeCellModel | null {
    const notebookModel = this._panel.content.model;
    if (!notebookModel) {
      return null;
    }
    const shared = notebookModel.sharedModel;
    let anchor = shared.cells.findIndex(c => c.id === this._anchorId);
    if (anchor < 0) {
      anchor = shared.cells.findIndex(c => c.id === this._sourceCellId);
    }
    const index = anchor < 0 ? shared.cells.length : anchor + 1;
    const metadata: IK2CellMetadata = {
      run_id: this.runId,
      step: message.step,
      call_id: message.call_id,
      model: message.model || this.model,
      source_cell: this._sourceCellId
    };
    shared.insertCell(index, {
      cell_type: 'code',
      source: message.code,
      metadata: { k2nb: { ...metadata } }
    });
    return notebookModel.cells.get(index) as ICodeCellModel;
  }

  private _deleteCell(id: string): void {
    const shared = this._panel.content.model?.sharedModel;
    const index = shared ? shared.cells.findIndex(c => c.id === id) : -1;
    if (shared && index >= 0) {
      shared.deleteCell(index);
    }
  }

  private _findCell(id: string): ICodeCellModel | null {
    const cells = this._panel.content.model?.cells;
    if (!cells) {
      return null;
    }
    for (let i = 0; i < cells.length; i++) {
      const cell = cells.get(i);
      if (cell.id === id) {
        return cell.type === 'code' ? (cell as ICodeCellModel) : null;
      }
    }
    return null;
  }

  /** Cells a previous run of the same %%k2 cell left behind. */
  private _previousRunCells(): string[] {
    const shared = this._panel.content.model?.sharedModel;
    if (!shared) {
      return [];
    }
    return shared.cells
      .filter(cell => {
        const meta = readK2Metadata(
          cell.getMetadata() as Record<string, unknown>
        );
        return (
          meta !== null &&
          meta.source_cell === this._sourceCellId &&
          meta.run_id !== this.runId
        );
      })
      .map(cell => cell.id);
  }

  /**
   * Ask whether to delete the previous run's cells. The run goes on while the
   * dialog is open (its new cells go right below the %%k2 cell), so a user who
   * looks away never stalls the kernel's messages.
   */
  private async _offerToReplacePreviousRun(): Promise<void> {
    const previous = this._previousRunCells();
    if (previous.length === 0) {
      return;
    }
    const count = previous.length;
    const result = await showDialog({
      title: 'Replace the previous k2 run?',
      body:
        `This %%k2 cell is running again. Its previous run left ${count} ` +
        `cell${count === 1 ? '' : 's'} below it. Delete ` +
        `${count === 1 ? 'it' : 'them'} so that only the new run's cells remain?`,
      buttons: [
        Dialog.cancelButton({ label: 'Keep' }),
        Dialog.warnButton({ label: 'Replace' })
      ]
    });
    if (!result.button.accept) {
      return;
    }
    const shared = this._panel.content.model?.sharedModel;
    if (!shared) {
      return;
    }
    const doomed = new Set(
      this._previousRunCells().filter(id => previous.includes(id))
    );
    shared.transact(() => {
      for (let i = shared.cells.length - 1; i >= 0; i--) {
        if (doomed.has(shared.cells[i].id)) {
          shared.deleteCell(i);
        }
      }
    });
  }

  private _panel: NotebookPanel;
  private _kernel: Kernel.IKernelConnection;
  private _parentMsgId: string;
  private _sourceCellId: string;
  private _anchorId: string;
  private _active: IActiveCall | null = null;
  private _approvalRequests = new Map<string, IApprovalRequested>();
  private _approvalArrived: (() => void) | null = null;
  private _dialog: ApprovalDialog | null = null;
  private _ended = false;
  private _insertedCalls = 0;
}
