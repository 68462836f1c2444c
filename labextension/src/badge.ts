import type { Cell } from '@jupyterlab/cells';
import type { Notebook } from '@jupyterlab/notebook';

import { readK2Metadata } from './protocol';

const CELL_CLASS = 'k2nb-cell';
const BADGE_CLASS = 'k2nb-badge';

/** Give every cell a k2 run made a small "k2" badge naming its provenance. */
export function decorateCells(notebook: Notebook): void {
  for (const cell of notebook.widgets) {
    decorateCell(cell);
  }
}

function decorateCell(cell: Cell): void {
  const meta = readK2Metadata(cell.model.metadata as Record<string, unknown>);
  let badge = cell.node.querySelector<HTMLElement>(`:scope > .${BADGE_CLASS}`);
  if (!meta) {
    badge?.remove();
    cell.removeClass(CELL_CLASS);
    return;
  }
  if (!badge) {
    badge = document.createElement('div');
    badge.className = BADGE_CLASS;
    badge.textContent = 'k2';
    cell.node.appendChild(badge);
  }
  cell.addClass(CELL_CLASS);
  badge.title =
    `Written by k2nb: ${meta.model || 'model'}, run ${meta.run_id}, ` +
    `step ${meta.step}, tool call ${meta.call_id}`;
}
