import type { Notebook } from '@jupyterlab/notebook';

import { readK2Metadata } from './protocol';

/** The attribute the kernel puts on a `%%k2` cell's line for one tool call. */
export const CALL_ID_ATTRIBUTE = 'data-k2nb-call-id';

/** The index of the cell whose `metadata.k2nb.call_id` is `callId`, or -1. */
export function cellIndexForCall(
  metadata: ReadonlyArray<Record<string, unknown> | undefined>,
  callId: string
): number {
  return metadata.findIndex(meta => readK2Metadata(meta)?.call_id === callId);
}

/** The call id a click on `target` points at, if it is inside a call line. */
export function clickedCallId(target: EventTarget | null): string | null {
  const element = target as Element | null;
  if (typeof element?.closest !== 'function') {
    return null;
  }
  return (
    element
      .closest(`[${CALL_ID_ATTRIBUTE}]`)
      ?.getAttribute(CALL_ID_ATTRIBUTE) ?? null
  );
}

/**
 * Make a click on a call line (an element with `data-k2nb-call-id`, anywhere
 * in the notebook) scroll to and select the cell that call inserted. One
 * listener on `node` serves every line, present or rendered later.
 */
export function followCallLinks(node: HTMLElement, notebook: Notebook): void {
  node.addEventListener('click', event => {
    const callId = clickedCallId(event.target);
    if (callId === null) {
      return;
    }
    const index = cellIndexForCall(
      notebook.widgets.map(
        cell => cell.model.metadata as Record<string, unknown> | undefined
      ),
      callId
    );
    if (index < 0) {
      return;
    }
    event.preventDefault();
    notebook.mode = 'command';
    notebook.activeCellIndex = index;
    notebook.deselectAll();
    // Not `scrollToCell`: it activates the cell, which focuses its editor and
    // so leaves the notebook in edit mode. Focusing the cell's own node keeps
    // command mode, so the keyboard acts on the selected cell (Enter edits it).
    notebook
      .scrollToItem(index, 'center')
      .catch(() => undefined)
      .then(() => notebook.widgets[index]?.node.focus({ preventScroll: true }));
  });
}
