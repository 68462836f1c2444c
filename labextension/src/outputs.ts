import type * as nbformat from '@jupyterlab/nbformat';
import type { IOutputAreaModel } from '@jupyterlab/outputarea';
import type { KernelMessage } from '@jupyterlab/services';

/** The part of an output area model the router writes to. */
export type OutputList = Pick<
  IOutputAreaModel,
  'add' | 'set' | 'clear' | 'length'
>;

/** The fields of an iopub output message's content the router reads. */
interface IOutputContent {
  data?: nbformat.IMimeBundle;
  metadata?: { k2nb?: unknown } & nbformat.OutputMetadata;
  transient?: { display_id?: string };
  wait?: boolean;
}

/**
 * Writes a stream of iopub output messages into an output area model, the way
 * an OutputArea does for its own execution (streams merge, clear_output with
 * wait, display updates by display_id).
 */
export class OutputRouter {
  constructor(outputs: OutputList) {
    this._outputs = outputs;
  }

  /**
   * Route one iopub message; returns whether it was an output this router took.
   *
   * The run's own view in the `%%k2` cell (its header, thinking and call
   * blocks) marks its displays with `metadata.k2nb`: those are never taken, and
   * neither are updates of displays this router did not show.
   */
  route(msg: KernelMessage.IIOPubMessage): boolean {
    const msgType = msg.header.msg_type;
    const content = msg.content as IOutputContent;
    const displayId = content.transient?.display_id;
    if (content.metadata?.k2nb !== undefined) {
      return false;
    }
    switch (msgType) {
      case 'stream':
      case 'error':
      case 'execute_result':
      case 'display_data': {
        if (this._clearPending) {
          this._displays.clear();
          this._clearPending = false;
        }
        const output: Record<string, unknown> = {
          ...content,
          output_type: msgType
        };
        delete output.transient; // part of the message, not of the saved output
        const length = this._outputs.add(output as nbformat.IOutput);
        if (displayId && msgType !== 'stream' && msgType !== 'error') {
          const indices = this._displays.get(displayId) ?? [];
          indices.push(length - 1);
          this._displays.set(displayId, indices);
        }
        return true;
      }
      case 'update_display_data': {
        const indices = displayId ? this._displays.get(displayId) : undefined;
        if (!indices) {
          return false;
        }
        const output = {
          output_type: 'display_data',
          data: content.data,
          metadata: content.metadata
        } as nbformat.IOutput;
        for (const index of indices) {
          if (index < this._outputs.length) {
            this._outputs.set(index, output);
          }
        }
        return true;
      }
      case 'clear_output':
        this._outputs.clear(Boolean(content.wait));
        if (content.wait) {
          this._clearPending = true;
        } else {
          this._displays.clear();
        }
        return true;
      default:
        return false;
    }
  }

  private _outputs: OutputList;
  private _displays = new Map<string, number[]>();
  private _clearPending = false;
}
