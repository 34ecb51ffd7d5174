// Feedback lines: errors are announced to screen readers as alerts, other news politely. With `focus`, the
// line also takes the keyboard focus when it appears (the result or error of what the person just did).
import { useEffect, useRef } from 'react';

function useFocusWhenShown(text: string | null | undefined, focus: boolean) {
  const line = useRef<HTMLParagraphElement>(null);
  useEffect(() => {
    if (focus && text) line.current?.focus();
  }, [focus, text]);
  return line;
}

export function ErrorMessage({
  error,
  focus = false,
}: {
  error: string | null | undefined;
  focus?: boolean;
}) {
  const line = useFocusWhenShown(error, focus);
  if (!error) return null;
  return (
    <p className="error" role="alert" ref={line} tabIndex={focus ? -1 : undefined}>
      {error}
    </p>
  );
}

export function Notice({
  children,
  focus = false,
}: {
  children: string | null | undefined;
  focus?: boolean;
}) {
  const line = useFocusWhenShown(children, focus);
  if (!children) return null;
  return (
    <p className="notice" role="status" ref={line} tabIndex={focus ? -1 : undefined}>
      {children}
    </p>
  );
}
