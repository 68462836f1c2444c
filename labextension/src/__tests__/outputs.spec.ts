import type * as nbformat from '@jupyterlab/nbformat';
import type { KernelMessage } from '@jupyterlab/services';

import { OutputList, OutputRouter } from '../outputs';

/**
 * An output list with an output area model's clearing rule: `clear(true)`
 * waits until the next output arrives.
 */
class Outputs implements OutputList {
  items: nbformat.IOutput[] = [];
  private _clearOnAdd = false;

  get length(): number {
    return this.items.length;
  }

  add(output: nbformat.IOutput): number {
    if (this._clearOnAdd) {
      this.items = [];
      this._clearOnAdd = false;
    }
    this.items.push(output);
    return this.items.length;
  }

  set(index: number, output: nbformat.IOutput): void {
    this.items[index] = output;
  }

  clear(wait = false): void {
    if (wait) {
      this._clearOnAdd = true;
    } else {
      this.items = [];
    }
  }
}

function iopub(
  msgType: string,
  content: Record<string, unknown>
): KernelMessage.IIOPubMessage {
  return {
    header: { msg_type: msgType },
    content
  } as unknown as KernelMessage.IIOPubMessage;
}

function display(text: string, displayId?: string) {
  return iopub('display_data', {
    data: { 'text/plain': text },
    metadata: {},
    ...(displayId ? { transient: { display_id: displayId } } : {})
  });
}

function update(text: string, displayId: string) {
  return iopub('update_display_data', {
    data: { 'text/plain': text },
    metadata: {},
    transient: { display_id: displayId }
  });
}

describe('OutputRouter', () => {
  let outputs: Outputs;
  let router: OutputRouter;

  beforeEach(() => {
    outputs = new Outputs();
    router = new OutputRouter(outputs);
  });

  it('takes streams, results, displays and errors as outputs of their type', () => {
    expect(
      router.route(iopub('stream', { name: 'stdout', text: 'hello\n' }))
    ).toBe(true);
    expect(
      router.route(
        iopub('execute_result', {
          execution_count: 4,
          data: { 'text/plain': '42' },
          metadata: {}
        })
      )
    ).toBe(true);
    expect(router.route(display('a plot'))).toBe(true);
    expect(
      router.route(
        iopub('error', { ename: 'ValueError', evalue: 'bad', traceback: [] })
      )
    ).toBe(true);
    expect(outputs.items).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'hello\n' },
      {
        output_type: 'execute_result',
        execution_count: 4,
        data: { 'text/plain': '42' },
        metadata: {}
      },
      {
        output_type: 'display_data',
        data: { 'text/plain': 'a plot' },
        metadata: {}
      },
      {
        output_type: 'error',
        ename: 'ValueError',
        evalue: 'bad',
        traceback: []
      }
    ]);
  });

  it('leaves the run’s own view (metadata.k2nb) to the %%k2 cell', () => {
    const ownView = iopub('display_data', {
      data: { 'text/html': '<div>run header</div>' },
      metadata: { k2nb: { view: 'header' } }
    });
    expect(router.route(ownView)).toBe(false);
    expect(outputs.items).toEqual([]);
  });

  it('does not take messages that are not outputs', () => {
    expect(router.route(iopub('status', { execution_state: 'busy' }))).toBe(
      false
    );
    expect(router.route(iopub('comm_msg', { comm_id: 'c', data: {} }))).toBe(
      false
    );
    expect(outputs.items).toEqual([]);
  });

  it('drops the transient display id from the saved output', () => {
    router.route(display('v1', 'progress'));
    expect(outputs.items[0]).not.toHaveProperty('transient');
  });

  it('updates every output it showed under a display id, and only those', () => {
    router.route(display('v1', 'progress'));
    router.route(display('other', 'plot'));
    router.route(display('v1 again', 'progress'));
    expect(router.route(update('v2', 'progress'))).toBe(true);
    expect(
      outputs.items.map(o => (o.data as nbformat.IMimeBundle)['text/plain'])
    ).toEqual(['v2', 'other', 'v2']);
    expect(outputs.items[0].output_type).toBe('display_data');
  });

  it('does not take updates of displays it did not show', () => {
    router.route(display('v1', 'progress'));
    expect(router.route(update('v2', 'elsewhere'))).toBe(false);
    expect(outputs.items[0].data).toEqual({ 'text/plain': 'v1' });
  });

  it('clears at once, forgetting the displays it showed', () => {
    router.route(display('v1', 'progress'));
    expect(router.route(iopub('clear_output', { wait: false }))).toBe(true);
    expect(outputs.items).toEqual([]);
    expect(router.route(update('v2', 'progress'))).toBe(false);
  });

  it('clears with wait when the next output arrives', () => {
    router.route(display('frame 1', 'anim'));
    expect(router.route(iopub('clear_output', { wait: true }))).toBe(true);
    expect(outputs.items).toHaveLength(1);
    router.route(iopub('stream', { name: 'stdout', text: 'frame 2\n' }));
    expect(outputs.items).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'frame 2\n' }
    ]);
    // The display of frame 1 is gone: its id no longer points anywhere.
    expect(router.route(update('frame 1b', 'anim'))).toBe(false);
    expect(outputs.items).toHaveLength(1);
  });
});
