import {
  COMM_TARGET,
  hello,
  isHelloRequest,
  readK2Metadata
} from '../protocol';

describe('hello', () => {
  it('says version 1 and the features of this extension', () => {
    expect(hello()).toEqual({
      type: 'hello',
      version: 1,
      features: ['real_cells', 'approval_dialog']
    });
  });

  it('gives a fresh list each time', () => {
    hello().features.push('changed');
    expect(hello().features).toEqual(['real_cells', 'approval_dialog']);
  });

  it('uses the comm target the kernel registers', () => {
    expect(COMM_TARGET).toBe('k2nb');
  });
});

describe('readK2Metadata', () => {
  const provenance = {
    run_id: 'run-1',
    step: 3,
    call_id: 'call-9',
    model: 'kimi-k2-thinking',
    source_cell: 'cell-a'
  };

  it('returns the k2nb provenance of an inserted cell', () => {
    expect(readK2Metadata({ k2nb: provenance, tags: [] })).toEqual(provenance);
  });

  it('returns null for cells without it', () => {
    expect(readK2Metadata(undefined)).toBeNull();
    expect(readK2Metadata({})).toBeNull();
    expect(readK2Metadata({ tags: ['k2nb'] })).toBeNull();
  });

  it('returns null when it is not a provenance object', () => {
    expect(readK2Metadata({ k2nb: 'run-1' })).toBeNull();
    expect(readK2Metadata({ k2nb: null })).toBeNull();
    expect(readK2Metadata({ k2nb: { call_id: 'call-9' } })).toBeNull();
    expect(readK2Metadata({ k2nb: { ...provenance, run_id: 7 } })).toBeNull();
  });
});

describe('isHelloRequest', () => {
  it('knows the kernel asking for a hello', () => {
    expect(isHelloRequest({ type: 'hello_request', version: 1 })).toBe(true);
    // a newer kernel's request with more fields is still one
    expect(isHelloRequest({ type: 'hello_request', version: 2, x: 1 })).toBe(
      true
    );
  });

  it('takes nothing else for one', () => {
    expect(isHelloRequest({ type: 'run_started', version: 1 })).toBe(false);
    expect(isHelloRequest(hello())).toBe(false);
    expect(isHelloRequest(null)).toBe(false);
    expect(isHelloRequest('hello_request')).toBe(false);
    expect(isHelloRequest(undefined)).toBe(false);
  });
});
