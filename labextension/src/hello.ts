import type { Kernel } from '@jupyterlab/services';

import { COMM_TARGET, hello } from './protocol';

/**
 * Tell the kernel that this extension is there: open a comm on target `k2nb`
 * with the hello, and close it once the kernel has handled the opening.
 *
 * A kernel without the k2nb target (k2nb not loaded) closes the comm itself;
 * closing it only after that keeps the frontend from getting a close for a
 * comm it already forgot. Nothing here may fail loudly: the kernel can be
 * busy, restarting or gone.
 */
export function sayHello(kernel: Kernel.IKernelConnection): void {
  let comm: Kernel.IComm;
  try {
    comm = kernel.createComm(COMM_TARGET);
  } catch {
    return; // a connection that does not handle comms
  }
  let closed = false;
  comm.onClose = () => {
    closed = true;
  };
  const closeOurSide = () => {
    if (!closed && !comm.isDisposed && !kernel.isDisposed) {
      closed = true;
      try {
        comm.close().done.catch(() => undefined);
      } catch {
        // The connection went away meanwhile.
      }
    }
  };
  try {
    comm.open({ ...hello() }).done.then(closeOurSide, closeOurSide);
  } catch {
    if (!comm.isDisposed) {
      comm.dispose();
    }
  }
}

/** Answer a run's `run_started` with the hello, on the run's own comm. */
export function replyHello(comm: Kernel.IComm): void {
  try {
    comm.send({ ...hello() }).done.catch(() => undefined);
  } catch {
    // The comm or the kernel is already gone: the run goes on without it.
  }
}
