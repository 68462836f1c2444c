import type { Notebook } from '@jupyterlab/notebook';

import {
  CALL_ID_ATTRIBUTE,
  cellIndexForCall,
  clickedCallId,
  followCallLinks
} from '../calllinks';

function provenance(callId: string) {
  return {
    k2nb: {
      run_id: 'run-1',
      step: 1,
      call_id: callId,
      model: 'kimi-k2-thinking',
      source_cell: 'cell-0'
    }
  };
}

/** An element inside a call line for `callId` (or outside any, for null). */
function target(callId: string | null) {
  return {
    closest: (selector: string) =>
      callId !== null && selector === `[${CALL_ID_ATTRIBUTE}]`
        ? {
            getAttribute: (name: string) =>
              name === CALL_ID_ATTRIBUTE ? callId : null
          }
        : null
  } as unknown as EventTarget;
}

describe('cellIndexForCall', () => {
  const cells = [
    { tags: [] },
    undefined,
    provenance('call-a'),
    { k2nb: { call_id: 'call-b' } }, // no run id: not k2nb provenance
    provenance('call-b'),
    provenance('call-a')
  ];

  it('finds the first cell inserted for the call', () => {
    expect(cellIndexForCall(cells, 'call-a')).toBe(2);
    expect(cellIndexForCall(cells, 'call-b')).toBe(4);
  });

  it('returns -1 when no cell has that call id', () => {
    expect(cellIndexForCall(cells, 'call-z')).toBe(-1);
    expect(cellIndexForCall([], 'call-a')).toBe(-1);
  });
});

describe('clickedCallId', () => {
  it('reads the call id of the enclosing call line', () => {
    expect(clickedCallId(target('call-7'))).toBe('call-7');
  });

  it('returns null outside call lines and for targets that are not elements', () => {
    expect(clickedCallId(target(null))).toBeNull();
    expect(clickedCallId(null)).toBeNull();
    expect(clickedCallId({} as EventTarget)).toBeNull();
  });
});

describe('followCallLinks', () => {
  function setUp() {
    let listener: ((event: unknown) => void) | null = null;
    const node = {
      addEventListener: (type: string, handler: (event: unknown) => void) => {
        if (type === 'click') {
          listener = handler;
        }
      }
    };
    const cell = (metadata: Record<string, unknown>) => ({
      model: { metadata },
      node: { focus: jest.fn() }
    });
    const widgets = [
      cell({}),
      cell(provenance('call-a')),
      cell(provenance('call-b'))
    ];
    const notebook = {
      widgets,
      mode: 'edit',
      activeCellIndex: 0,
      deselectAll: jest.fn(),
      scrollToItem: jest.fn(() => Promise.resolve())
    };
    followCallLinks(
      node as unknown as HTMLElement,
      notebook as unknown as Notebook
    );
    const click = (callId: string | null) => {
      const event = { target: target(callId), preventDefault: jest.fn() };
      listener!(event);
      return event;
    };
    return { notebook, widgets, click };
  }

  it('selects and scrolls to the cell of the clicked call', async () => {
    const { notebook, widgets, click } = setUp();
    const event = click('call-b');
    expect(notebook.activeCellIndex).toBe(2);
    expect(notebook.mode).toBe('command');
    expect(notebook.deselectAll).toHaveBeenCalled();
    expect(notebook.scrollToItem).toHaveBeenCalledWith(2, 'center');
    expect(event.preventDefault).toHaveBeenCalled();
    // Once scrolled, the cell itself takes the focus (not its editor): the
    // notebook stays in command mode.
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(widgets[2].node.focus).toHaveBeenCalledWith({ preventScroll: true });
    expect(widgets[1].node.focus).not.toHaveBeenCalled();
  });

  it('leaves clicks elsewhere alone', () => {
    const { notebook, click } = setUp();
    const event = click(null);
    expect(notebook.activeCellIndex).toBe(0);
    expect(notebook.scrollToItem).not.toHaveBeenCalled();
    expect(event.preventDefault).not.toHaveBeenCalled();
  });

  it('does nothing for a call whose cell is gone', () => {
    const { notebook, click } = setUp();
    const event = click('call-deleted');
    expect(notebook.activeCellIndex).toBe(0);
    expect(notebook.mode).toBe('edit');
    expect(notebook.scrollToItem).not.toHaveBeenCalled();
    expect(event.preventDefault).not.toHaveBeenCalled();
  });
});
