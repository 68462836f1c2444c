import type * as nbformat from '@jupyterlab/nbformat';
import type { IOutputAreaModel } from '@jupyterlab/outputarea';
import type { KernelMessage } from '@jupyterlab/services';

/**
 * Writes a stream of iopub output messages into an output area model, the way
 * an OutputArea does for its own execution (streams merge, clear_output with
 * wait, display updates by display_id).
 */
export class OutputRouter {
  constructor(outputs: IOutputAreaModel) {
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
    const content = msg.content as Record<string, any>;
    const displayId = content.transient?.display_id as string | undefined;
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
        const output = { ...content, output_type: msgType } as nbformat.IOutput;
        delete (output as any).transient;
        const length = this._outputs.add(output);
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

  private _outputs: IOutputAreaModel;
  private _displays = new Map<string, number[]>();
  private _clearPending = false;
}
