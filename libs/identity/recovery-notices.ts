/**
 * The condition for an invite `i` whose notice the passkey `a` of session `s` has not acknowledged yet
 * (issue 12): a recovery, or an admin's first invite of a privileged user, used after that passkey was
 * registered. The session lookup asks whether any exists; GET /api/me lists them.
 */
export const NOTICE_PENDING = `i.user_id = s.user_id AND (i.recovery OR i.enrollment_notice)
  AND i.used_at IS NOT NULL AND a.created_at <= i.used_at
  AND NOT EXISTS (SELECT 1 FROM recovery_acknowledgements k WHERE k.invite_id = i.id AND k.authenticator_id = a.id)`;
