import type { Kernel } from '@jupyterlab/services';

import { replyHello, sayHello } from '../hello';

const HELLO = {
  type: 'hello',
  version: 1,
  features: ['real_cells', 'approval_dialog']
};

/**
 * A future whose `done` the test settles; `handled()` tells whether anyone
 * took care of a failure (a rejection nobody handles is an error in the
 * browser console).
 */
function future() {
  let resolve!: () => void;
  let reject!: (reason: Error) => void;
  let handled = false;
  const chained: Promise<unknown>[] = [];
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const done = {
    then(onDone?: () => unknown, onFailure?: (reason: unknown) => unknown) {
      handled ||= onFailure !== undefined;
      const next = promise.then(onDone, onFailure);
      chained.push(next);
      return next;
    },
    catch(onFailure: (reason: unknown) => unknown) {
      handled = true;
      const next = promise.catch(onFailure);
      chained.push(next);
      return next;
    }
  } as Promise<void>;
  return { done, resolve, reject, handled: () => handled, chained };
}

class FakeComm {
  opened: unknown[] = [];
  sent: unknown[] = [];
  closes = 0;
  isDisposed = false;
  onClose: ((msg: unknown) => void) | null = null;
  openFuture = future();
  sendFuture = future();
  closeFuture = future();
  failOn: 'open' | 'send' | 'close' | null = null;

  open(data: unknown) {
    if (this.failOn === 'open') {
      throw new Error('Cannot open');
    }
    this.opened.push(data);
    return { done: this.openFuture.done };
  }

  send(data: unknown) {
    if (this.failOn === 'send') {
      throw new Error('Cannot send');
    }
    this.sent.push(data);
    return { done: this.sendFuture.done };
  }

  close() {
    if (this.failOn === 'close') {
      throw new Error('Cannot close');
    }
    this.closes += 1;
    this.onClose?.({});
    return { done: this.closeFuture.done };
  }

  /** The kernel closed the comm (no k2nb target there). */
  closedByKernel() {
    this.onClose?.({});
    this.isDisposed = true;
  }

  dispose() {
    this.isDisposed = true;
  }
}

class FakeKernel {
  comm = new FakeComm();
  targets: string[] = [];
  isDisposed = false;
  failToCreate = false;

  createComm(target: string) {
    if (this.failToCreate) {
      throw new Error('Comms are disabled on this kernel connection');
    }
    this.targets.push(target);
    return this.comm;
  }
}

const asKernel = (kernel: FakeKernel) =>
  kernel as unknown as Kernel.IKernelConnection;
const asComm = (comm: FakeComm) => comm as unknown as Kernel.IComm;
const settle = () => new Promise(resolve => setTimeout(resolve, 0));

describe('sayHello', () => {
  it('opens a comm on target k2nb with the hello', () => {
    const kernel = new FakeKernel();
    sayHello(asKernel(kernel));
    expect(kernel.targets).toEqual(['k2nb']);
    expect(kernel.comm.opened).toEqual([HELLO]);
  });

  it('closes the comm once the kernel has handled the opening', async () => {
    const kernel = new FakeKernel();
    sayHello(asKernel(kernel));
    await settle();
    expect(kernel.comm.closes).toBe(0);
    kernel.comm.openFuture.resolve();
    await settle();
    expect(kernel.comm.closes).toBe(1);
  });

  it('does not close a comm the kernel already closed', async () => {
    const kernel = new FakeKernel();
    sayHello(asKernel(kernel));
    kernel.comm.closedByKernel();
    kernel.comm.openFuture.resolve();
    await settle();
    expect(kernel.comm.closes).toBe(0);
  });

  it('still closes its side when the opening future fails', async () => {
    const kernel = new FakeKernel();
    sayHello(asKernel(kernel));
    kernel.comm.openFuture.reject(new Error('Canceled future'));
    await settle();
    expect(kernel.comm.openFuture.handled()).toBe(true);
    expect(kernel.comm.closes).toBe(1);
  });

  it('handles a failure of the closing future', async () => {
    const kernel = new FakeKernel();
    sayHello(asKernel(kernel));
    kernel.comm.openFuture.resolve();
    await settle();
    kernel.comm.closeFuture.reject(new Error('kernel restarted'));
    await settle();
    expect(kernel.comm.closeFuture.handled()).toBe(true);
  });

  it('is silent when the connection cannot make comms', () => {
    const kernel = new FakeKernel();
    kernel.failToCreate = true;
    expect(() => sayHello(asKernel(kernel))).not.toThrow();
  });

  it('is silent and leaves no comm behind when the opening fails', () => {
    const kernel = new FakeKernel();
    kernel.comm.failOn = 'open';
    expect(() => sayHello(asKernel(kernel))).not.toThrow();
    expect(kernel.comm.isDisposed).toBe(true);
  });

  it('is silent when closing fails', async () => {
    const kernel = new FakeKernel();
    kernel.comm.failOn = 'close';
    sayHello(asKernel(kernel));
    kernel.comm.openFuture.resolve();
    // What runs after the opening must not fail in turn.
    await expect(Promise.all(kernel.comm.openFuture.chained)).resolves.toEqual([
      undefined
    ]);
  });

  it('does not close anything on a disposed connection', async () => {
    const kernel = new FakeKernel();
    sayHello(asKernel(kernel));
    kernel.isDisposed = true;
    kernel.comm.openFuture.resolve();
    await settle();
    expect(kernel.comm.closes).toBe(0);
  });
});

describe('replyHello', () => {
  it('sends the hello on the run’s comm', () => {
    const comm = new FakeComm();
    replyHello(asComm(comm));
    expect(comm.sent).toEqual([HELLO]);
    expect(comm.closes).toBe(0);
  });

  it('is silent when the comm is gone', () => {
    const comm = new FakeComm();
    comm.failOn = 'send';
    expect(() => replyHello(asComm(comm))).not.toThrow();
  });

  it('handles a failing send future', async () => {
    const comm = new FakeComm();
    replyHello(asComm(comm));
    comm.sendFuture.reject(new Error('kernel restarted'));
    await settle();
    expect(comm.sendFuture.handled()).toBe(true);
  });
});
