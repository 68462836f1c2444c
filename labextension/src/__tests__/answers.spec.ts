import {
  ApprovalDecision,
  ApprovalSubject,
  approvalAnswer,
  approvalCallId,
  approvalSubject,
  argumentsProblem,
  editProblem,
  prettyArguments
} from '../answers';
import type { IApprovalRequested } from '../protocol';

function request(fields: Partial<IApprovalRequested>): IApprovalRequested {
  return {
    type: 'approval_request',
    run_id: 'run-1',
    step: 2,
    call_id: 'call-1',
    ...fields
  };
}

const CODE: ApprovalSubject = { kind: 'code', code: 'x = 1\nprint(x)' };
const SEARCH: ApprovalSubject = {
  kind: 'tool',
  name: 'web_search',
  arguments: '{"query": "k2"}'
};

describe('approvalCallId', () => {
  it('reads the call id of the kernel’s approval prompt', () => {
    expect(
      approvalCallId(
        '[k2nb:call-1] Run this code? [y]es / [n]o, skip / [e]dit / [a]ll from now on: '
      )
    ).toBe('call-1');
  });

  it('reads call ids with dots and colons, as K2 writes them', () => {
    expect(
      approvalCallId('[k2nb:functions.code_interpreter:0] Run this code? ')
    ).toBe('functions.code_interpreter:0');
  });

  it('recognises the prompt the kernel repeats after an unclear answer', () => {
    expect(
      approvalCallId(
        '[k2nb:c7] Please answer y (run), n (skip), e (edit) or a (all): '
      )
    ).toBe('c7');
  });

  it('ignores other input requests', () => {
    expect(approvalCallId('Your name: ')).toBeNull();
    expect(approvalCallId('Reason for the agent (optional): ')).toBeNull();
    expect(approvalCallId('[k2nb:] empty id')).toBeNull();
    expect(approvalCallId('note [k2nb:call-1] not at the start')).toBeNull();
  });
});

describe('approvalSubject', () => {
  it('treats a request without a name as code_interpreter', () => {
    expect(approvalSubject(request({ code: 'print(1)' }))).toEqual({
      kind: 'code',
      code: 'print(1)'
    });
  });

  it('keeps code for a named code_interpreter request', () => {
    expect(
      approvalSubject(
        request({ name: 'code_interpreter', code: 'a = 2', arguments: '{}' })
      )
    ).toEqual({ kind: 'code', code: 'a = 2' });
  });

  it('takes the code from the arguments when the request has none', () => {
    expect(
      approvalSubject(
        request({ name: 'code_interpreter', arguments: '{"code": "b = 3"}' })
      )
    ).toEqual({ kind: 'code', code: 'b = 3' });
  });

  it('makes any other tool a tool call with its arguments', () => {
    expect(
      approvalSubject(
        request({ name: 'read_file', arguments: '{"path": "data.csv"}' })
      )
    ).toEqual({
      kind: 'tool',
      name: 'read_file',
      arguments: '{"path": "data.csv"}'
    });
  });

  it('gives a tool call without arguments an empty object', () => {
    expect(approvalSubject(request({ name: 'list_files' }))).toEqual({
      kind: 'tool',
      name: 'list_files',
      arguments: '{}'
    });
  });
});

describe('prettyArguments', () => {
  it('indents JSON by two spaces', () => {
    expect(prettyArguments('{"query":"k2","limit":3}')).toBe(
      '{\n  "query": "k2",\n  "limit": 3\n}'
    );
  });

  it('leaves text that is not JSON as it is', () => {
    expect(prettyArguments('{"query": ')).toBe('{"query": ');
  });
});

describe('argumentsProblem and editProblem', () => {
  it('accepts a JSON object', () => {
    expect(argumentsProblem('{"query": "moe"}')).toBeNull();
    expect(editProblem(SEARCH, ' {} ')).toBeNull();
  });

  it('names invalid JSON', () => {
    expect(argumentsProblem('{"query": ')).toMatch(/not valid JSON/);
  });

  it('asks for an object, not another JSON value', () => {
    for (const text of ['[1, 2]', '"text"', '3', 'null']) {
      expect(argumentsProblem(text)).toMatch(/JSON object/);
    }
  });

  it('refuses empty code and accepts any other code', () => {
    expect(editProblem(CODE, '  \n ')).toMatch(/empty/);
    expect(editProblem(CODE, 'not python but not empty')).toBeNull();
  });
});

describe('approvalAnswer', () => {
  const parsed = (subject: ApprovalSubject, decision: ApprovalDecision) =>
    JSON.parse(approvalAnswer(subject, decision));

  it('answers Run on code with the code that was shown', () => {
    expect(parsed(CODE, { action: 'run' })).toEqual({
      action: 'run',
      code: 'x = 1\nprint(x)'
    });
  });

  it('answers Run all', () => {
    expect(parsed(CODE, { action: 'all' })).toEqual({
      action: 'all',
      code: 'x = 1\nprint(x)'
    });
    expect(parsed(SEARCH, { action: 'all' })).toEqual({ action: 'all' });
  });

  it('answers Skip with the reason, trimmed', () => {
    expect(
      parsed(CODE, { action: 'skip', reason: '  deletes my files \n' })
    ).toEqual({
      action: 'skip',
      code: 'x = 1\nprint(x)',
      reason: 'deletes my files'
    });
  });

  it('answers Skip without a reason field when none was given', () => {
    expect(parsed(CODE, { action: 'skip', reason: '   ' })).toEqual({
      action: 'skip',
      code: 'x = 1\nprint(x)'
    });
    expect(parsed(SEARCH, { action: 'skip', reason: '' })).toEqual({
      action: 'skip'
    });
  });

  it('answers Edit on code with the edited code', () => {
    expect(parsed(CODE, { action: 'edit', text: 'x = 2\nprint(x)' })).toEqual({
      action: 'edit',
      code: 'x = 2\nprint(x)'
    });
  });

  it('answers Edit on another tool with the arguments as compact JSON text', () => {
    const answer = parsed(SEARCH, {
      action: 'edit',
      text: '{\n  "query": "kimi k2"\n}'
    });
    expect(answer).toEqual({
      action: 'edit',
      arguments: '{"query":"kimi k2"}'
    });
    expect(answer).not.toHaveProperty('code');
  });

  it('answers Run on another tool with the action only', () => {
    expect(parsed(SEARCH, { action: 'run' })).toEqual({ action: 'run' });
  });

  it('writes one line of JSON (the kernel reads one input line)', () => {
    expect(approvalAnswer(CODE, { action: 'edit', text: 'a\nb' })).not.toMatch(
      /\n/
    );
  });
});
