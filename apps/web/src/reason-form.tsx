import { useId, useState, type FormEvent } from 'react';

/** A small inline form for actions that need a stated reason (deny, revoke, suspend). */
export function ReasonForm({
  label,
  submitLabel,
  required = true,
  busy,
  onSubmit,
  onCancel,
}: {
  label: string;
  submitLabel: string;
  required?: boolean;
  busy: boolean;
  onSubmit: (reason: string) => void;
  onCancel: () => void;
}) {
  const id = useId();
  const [reason, setReason] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSubmit(reason.trim());
  };
  return (
    <form className="inline-form" onSubmit={submit}>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        value={reason}
        onChange={(event) => setReason(event.target.value)}
        required={required}
        maxLength={2000}
        autoFocus
      />
      <button type="submit" disabled={busy || (required && reason.trim() === '')}>
        {submitLabel}
      </button>
      <button type="button" className="secondary" onClick={onCancel} disabled={busy}>
        Back
      </button>
    </form>
  );
}
