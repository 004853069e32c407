import type { ComponentChildren } from 'preact';

interface ButtonProps {
  type?: 'button' | 'submit';
  variant?: 'primary' | 'secondary' | 'danger';
  disabled?: boolean;
  onClick?: () => void;
  /** `data-testid`, for the browser tests. */
  testId?: string;
  /** `aria-pressed`, for toggles. */
  pressed?: boolean;
  children: ComponentChildren;
}

const base =
  'inline-flex items-center justify-center rounded-md px-4 py-2 text-sm font-semibold shadow-sm ' +
  'focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ' +
  'disabled:cursor-not-allowed disabled:opacity-60';

const variants = {
  primary: 'bg-blue-700 text-white hover:bg-blue-800',
  secondary: 'border border-slate-300 bg-white text-slate-800 hover:bg-slate-100',
  danger: 'bg-red-700 text-white hover:bg-red-800',
};

export function Button({ type = 'button', variant = 'primary', disabled, onClick, testId, pressed, children }: ButtonProps) {
  return (
    <button
      type={type}
      class={`${base} ${variants[variant]}`}
      disabled={disabled}
      onClick={onClick}
      data-testid={testId}
      aria-pressed={pressed}
    >
      {children}
    </button>
  );
}
