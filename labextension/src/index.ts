import type {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { CodeCell } from '@jupyterlab/cells';
import {
  INotebookTracker,
  type Notebook,
  type NotebookPanel
} from '@jupyterlab/notebook';
import type { Kernel, KernelMessage } from '@jupyterlab/services';

import { decorateCells } from './badge';
import { followCallLinks } from './calllinks';
import { replyHello, sayHello } from './hello';
import {
  COMM_TARGET,
  IRunStarted,
  isHelloRequest,
  K2Message
} from './protocol';
import { K2Run } from './run';

/** The code cell of `notebook` whose running execution sent `msgId`. */
function findExecutingCell(notebook: Notebook, msgId: string): CodeCell | null {
  for (const cell of notebook.widgets) {
    if (
      cell instanceof CodeCell &&
      cell.outputArea.future?.msg.header.msg_id === msgId
    ) {
      return cell;
    }
  }
  return null;
}

/** Everything k2nb does for one open notebook. */
class NotebookBinding {
  constructor(panel: NotebookPanel) {
    this._panel = panel;
    const session = panel.sessionContext;
    session.kernelChanged.connect(this._connectKernel, this);
    void session.ready.then(() => this._connectKernel());
    void panel.context.ready.then(() => {
      decorateCells(panel.content);
      panel.content.model?.cells.changed.connect(() =>
        decorateCells(panel.content)
      );
    });
    panel.disposed.connect(() => this._endRuns());
    followCallLinks(panel.node, panel.content);
  }

  /**
   * Register the comm target on the notebook's kernel connection and say
   * hello to the kernel. The registration outlives kernel restarts (same
   * connection), the kernel's memory of the hello does not: it is said again
   * once a restarted kernel is idle. A kernel change brings a new connection,
   * registered here once.
   */
  private _connectKernel(): void {
    const kernel = this._panel.sessionContext.session?.kernel;
    if (!kernel || this._kernels.has(kernel)) {
      return;
    }
    this._kernels.add(kernel);
    kernel.registerCommTarget(COMM_TARGET, (comm, msg) =>
      this._openRun(kernel, comm, msg)
    );
    sayHello(kernel);
    let restarted = false;
    kernel.statusChanged.connect((_, status) => {
      if (
        status === 'restarting' ||
        status === 'autorestarting' ||
        status === 'dead'
      ) {
        restarted = status !== 'dead';
        this._endRuns();
      } else if (status === 'idle' && restarted) {
        restarted = false;
        sayHello(kernel);
      }
    });
  }

  private _openRun(
    kernel: Kernel.IKernelConnection,
    comm: Kernel.IComm,
    msg: KernelMessage.ICommOpenMsg
  ): void {
    if (isHelloRequest(msg.content.data)) {
      // k2nb was just loaded from a cell: the kernel missed the connect-time
      // hello. The kernel has closed this comm already and still hears it.
      replyHello(comm);
      return;
    }
    const start = msg.content.data as unknown as IRunStarted;
    const parentId = (msg.parent_header as KernelMessage.IHeader).msg_id;
    const cell = parentId
      ? findExecutingCell(this._panel.content, parentId)
      : null;
    if (!cell || start?.type !== 'run_started') {
      // Run by another client of the same kernel (another view, a console):
      // its outputs stay where they are.
      return;
    }
    replyHello(comm);
    const run = new K2Run(this._panel, kernel, cell, parentId, start);
    this._runs.add(run);
    comm.onMsg = message => {
      run.handle(message.content.data as unknown as K2Message);
      if (run.isEnded) {
        this._runs.delete(run);
      }
    };
    comm.onClose = () => {
      run.end();
      this._runs.delete(run);
    };
  }

  private _endRuns(): void {
    for (const run of this._runs) {
      run.end();
    }
    this._runs.clear();
  }

  private _panel: NotebookPanel;
  private _kernels = new WeakSet<Kernel.IKernelConnection>();
  private _runs = new Set<K2Run>();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'k2nb:plugin',
  description:
    'Turns each code_interpreter call of a %%k2 run into a real notebook cell.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    tracker.widgetAdded.connect((_, panel) => new NotebookBinding(panel));
    tracker.forEach(panel => new NotebookBinding(panel));
  }
};

export default plugin;
