import { PolicyError } from '../../libs/policy/policy-error.js';
import { policyWarnings } from '../../libs/policy/policy-checks.js';
import { loadPolicyDir } from '../../libs/policy/policy-loader.js';
import { AUDIT_VERIFY_USAGE, auditVerify } from './audit-verify.js';
import { AUDIT_VERIFY_CONSISTENCY_USAGE } from './audit-verify-consistency.js';
import { inviteCommand } from './invite.js';
import { KEYS_USAGE, keysCommand } from './keys.js';
import { REQUEST_USAGE, requestCommand } from './request.js';
import { SSH_USAGE, sshCommand } from './ssh-krl-sync.js';

const USAGE = `Usage: npm run cli -- <command>

Commands:
  policy check <dir> [--hard-max-duration <seconds>]
      Validate every *.yaml in <dir> as one policy (for CI). Prints the policy hash, or each problem as
      file:line: reason, and exits 1.
  ${AUDIT_VERIFY_USAGE}
  ${AUDIT_VERIFY_CONSISTENCY_USAGE}
  invite <username> [--role admin|auditor]... [--display-name "Name"] [--break-glass]
      Create a one-time enrollment link (24 h): the first admin, or a recovery invite for an existing
      user (roles unchanged). Needs DATABASE_URL (and PUBLIC_URL for the link); audited as actor "cli".
      Recovering an admin or approver needs --break-glass (no second admin; audited with an alert).
  ${KEYS_USAGE}
  ${SSH_USAGE}
  ${REQUEST_USAGE}
  help
      Show this text.`;

const DEFAULT_HARD_MAX_SECONDS = 8 * 3600;

async function policyCheck(args: string[]): Promise<number> {
  const [dir, flag, value] = args;
  if (!dir || (flag !== undefined && flag !== '--hard-max-duration')) {
    console.error(USAGE);
    return 2;
  }
  const hardMaxDurationSeconds = value === undefined ? DEFAULT_HARD_MAX_SECONDS : Number(value);
  if (!Number.isInteger(hardMaxDurationSeconds) || hardMaxDurationSeconds <= 0) {
    console.error('--hard-max-duration must be a positive whole number of seconds');
    return 2;
  }
  try {
    const { policy, hash, files } = await loadPolicyDir(dir, { hardMaxDurationSeconds });
    for (const warning of policyWarnings(policy)) console.warn(`warning: ${warning}`);
    console.log(
      `OK ${hash}: ${files.length} file(s), ${policy.entitlements.length} entitlement(s), ` +
        `${Object.keys(policy.groups).length} group(s), ${Object.keys(policy.connectors).length} connector(s)`,
    );
    return 0;
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    console.error(error.message);
    return 1;
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, subcommand, ...rest] = argv;
  if (command === 'policy' && subcommand === 'check') return policyCheck(rest);
  if (command === 'audit' && subcommand === 'verify') return auditVerify(rest);
  if (command === 'invite') return inviteCommand(argv.slice(1));
  if (command === 'keys') return keysCommand(argv.slice(1));
  if (command === 'ssh') return sshCommand(argv.slice(1));
  if (command === 'request') return requestCommand(argv.slice(1));
  if (command === undefined || command === 'help' || command === '--help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  console.error(`Unknown command: ${argv.join(' ')}\n\n${USAGE}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
