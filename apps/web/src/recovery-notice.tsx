// Tells a recovered user who recovered their account (issue 12), or a privileged user who created their
// enrollment link, until this passkey acknowledges it.
import { api, type RecoveryNotice } from './api';
import { ErrorMessage } from './messages';
import { formatTime } from './time';
import { useAction } from './use-api';

export function RecoveryNotices({
  notices,
  onAcknowledged,
}: {
  notices: RecoveryNotice[];
  onAcknowledged: () => Promise<void>;
}) {
  const acknowledge = useAction();
  if (notices.length === 0) return null;
  return (
    <section className="error" role="alert" aria-label="Account recovery">
      {notices.map((notice) => (
        <p key={notice.inviteId}>
          {notice.kind === 'enrollment'
            ? `Your account was enrolled on ${formatTime(notice.recoveredAt)} from an invite `
            : `Your account was recovered on ${formatTime(notice.recoveredAt)}: a new passkey was enrolled with a recovery link `}
          created by <strong>{notice.createdBy}</strong>
          {notice.approvedBy ? (
            <>
              {' '}
              and approved by <strong>{notice.approvedBy}</strong>
            </>
          ) : null}
          {notice.breakGlass ? ' (break-glass, without a second admin)' : ''}.
          {notice.kind === 'enrollment'
            ? ' If you did not enroll this passkey yourself, tell your security team now. '
            : ' Your other sessions were signed out. If this was not you, tell your security team now. '}
          <button
            type="button"
            className="secondary"
            disabled={acknowledge.busy}
            onClick={() =>
              void acknowledge.run(async () => {
                await api.post(`/api/me/recovery-notices/${notice.inviteId}/acknowledge`, {});
                await onAcknowledged();
              })
            }
          >
            I understand
          </button>
        </p>
      ))}
      <ErrorMessage error={acknowledge.error} />
    </section>
  );
}
