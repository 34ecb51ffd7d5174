import { DomainError, ErrorCode } from '../domain/errors.js';

/** One reason a policy was refused; `path` is the YAML path (e.g. `entitlements[2].approval.approvals`). */
export interface PolicyProblem {
  file: string;
  line: number | null;
  path: string;
  reason: string;
}

/** A refused policy: every problem found, each with file, line and reason. */
export class PolicyError extends DomainError {
  constructor(readonly problems: PolicyProblem[]) {
    super(ErrorCode.POLICY_INVALID, formatProblems(problems), problems);
    this.name = 'PolicyError';
  }
}

function formatProblems(problems: PolicyProblem[]): string {
  const lines = problems.map(({ file, line, reason }) =>
    file ? `${file}${line === null ? '' : `:${line}`}: ${reason}` : reason,
  );
  return `invalid policy:\n${lines.join('\n')}`;
}
