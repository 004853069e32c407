import type { ConnState } from '../live';
import { useI18n } from '../i18n';

const dot: Record<ConnState, string> = {
  connecting: 'bg-amber-400',
  connected: 'bg-emerald-500',
  reconnecting: 'bg-amber-500 animate-pulse',
  offline: 'bg-slate-400',
};

/** Shows the live connection state; `data-state` is the machine-readable value. */
export function ConnIndicator({ state }: { state: ConnState }) {
  const { t } = useI18n();
  return (
    <span
      data-testid="conn-state"
      data-state={state}
      role="status"
      class="inline-flex items-center gap-2 rounded-full border border-slate-300 bg-white px-3 py-1 text-sm"
    >
      <span aria-hidden="true" class={`inline-block h-2.5 w-2.5 rounded-full ${dot[state]}`} />
      <span>{t(`conn.${state}`)}</span>
    </span>
  );
}
