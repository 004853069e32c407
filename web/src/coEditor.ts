// The CodeMirror 6 editor of a co-edited post body (loaded on demand with the
// post editor's co-editing section, see components/CoEdit.tsx).
//
// `yCollab(ytext, awareness)` from y-codemirror.next binds the editor to the
// Y.Text (and gives undo/redo of one's own edits). Its remote-cursor plugin is
// swapped for `remoteCursors` below: the stock one paints each caret with an
// inline `style` attribute, which the server's Content-Security-Policy
// (`style-src 'self'`) refuses. Ours renders the same elements
// (`.cm-ySelection`, `.cm-ySelectionCaret`, `.cm-ySelectionInfo`, so the stock
// theme applies) and sets colours through the CSSOM, which the policy allows;
// it reads and writes the same awareness fields (`user {name, color,
// colorLight}`, `cursor {anchor, head}` as Yjs relative positions), so other
// y-codemirror clients see our cursors and we see theirs.
import { markdown } from '@codemirror/lang-markdown';
import { Annotation, Compartment, EditorState, Prec, type Extension, type Range } from '@codemirror/state';
import { Decoration, type DecorationSet, keymap, placeholder, ViewPlugin, type ViewUpdate, WidgetType } from '@codemirror/view';
import { EditorView, minimalSetup } from 'codemirror';
import { yCollab, yRemoteSelections, yRemoteSelectionsTheme, ySyncFacet, yUndoManagerKeymap } from 'y-codemirror.next';
import type { Awareness } from 'y-protocols/awareness';
import * as Y from 'yjs';

/** What we put in awareness as `user`. */
export interface AwarenessUser {
  name: string;
  color: string;
  colorLight: string;
  /** Our own addition: the StudyOn user id (stock clients ignore it). */
  id?: number;
}

function hex(n: number): string {
  return Math.round(n * 255)
    .toString(16)
    .padStart(2, '0');
}

/** A colour of its own for each user id (golden-angle hues), as `#rrggbb`, and a light one for selections. */
export function userColors(userId: number): { color: string; colorLight: string } {
  const h = (userId * 137.508) % 360;
  const s = 0.7;
  const l = 0.4;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    return l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
  };
  const color = `#${hex(f(0))}${hex(f(8))}${hex(f(4))}`;
  return { color, colorLight: `${color}33` };
}

/** Only plain colour values from other clients reach our styles. */
const SAFE_COLOR = /^(#[0-9a-f]{3,8}|(rgb|rgba|hsl|hsla)\([0-9.,%\s/a-z-]{1,60}\))$/i;
function safeColor(value: unknown, fallback: string): string {
  return typeof value === 'string' && SAFE_COLOR.test(value.trim()) ? value.trim() : fallback;
}

/** Marks a transaction that only asks for the remote cursors to be drawn again. */
const redrawCursors = Annotation.define<true>();

class RemoteCaret extends WidgetType {
  constructor(
    readonly color: string,
    readonly name: string,
  ) {
    super();
  }

  override eq(other: RemoteCaret): boolean {
    return other.color === this.color && other.name === this.name;
  }

  toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = 'cm-ySelectionCaret';
    caret.style.backgroundColor = this.color;
    caret.style.borderColor = this.color;
    const dot = document.createElement('span');
    dot.className = 'cm-ySelectionCaretDot';
    const info = document.createElement('span');
    info.className = 'cm-ySelectionInfo';
    info.textContent = this.name;
    caret.append('\u2060', dot, '\u2060', info, '\u2060');
    return caret;
  }

  override ignoreEvent(): boolean {
    return true;
  }
}

function absolute(doc: Y.Doc, ytext: Y.Text, json: unknown): number | null {
  if (!json || typeof json !== 'object') return null;
  try {
    const pos = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(json), doc);
    return pos && pos.type === ytext ? pos.index : null;
  } catch {
    return null;
  }
}

const remoteCursors = ViewPlugin.fromClass(
  class {
    decorations: DecorationSet;
    private readonly ytext: Y.Text;
    private readonly awareness: Awareness;
    private readonly onChange: (changes: { added: number[]; updated: number[]; removed: number[] }) => void;

    constructor(view: EditorView) {
      const conf = view.state.facet(ySyncFacet);
      this.ytext = conf.ytext;
      this.awareness = conf.awareness as Awareness;
      this.decorations = this.build(view);
      this.onChange = ({ added, updated, removed }) => {
        const me = this.awareness.clientID;
        // Our own cursor changes while the editor updates; only others' need a redraw.
        if ([...added, ...updated, ...removed].some((id) => id !== me)) view.dispatch({ annotations: redrawCursors.of(true) });
      };
      this.awareness.on('change', this.onChange);
    }

    update(u: ViewUpdate): void {
      if (u.selectionSet || u.focusChanged || u.docChanged) this.publish(u.view);
      if (u.docChanged || u.transactions.some((tr) => tr.annotation(redrawCursors))) this.decorations = this.build(u.view);
    }

    destroy(): void {
      this.awareness.off('change', this.onChange);
    }

    /** Our selection into awareness, while the editor has the focus. */
    private publish(view: EditorView): void {
      const local = this.awareness.getLocalState();
      if (!local || !view.hasFocus) return;
      const sel = view.state.selection.main;
      const anchor = Y.createRelativePositionFromTypeIndex(this.ytext, sel.anchor);
      const head = Y.createRelativePositionFromTypeIndex(this.ytext, sel.head);
      const cur = local.cursor as { anchor?: unknown; head?: unknown } | null | undefined;
      if (cur && cur.anchor && cur.head) {
        try {
          const same =
            Y.compareRelativePositions(Y.createRelativePositionFromJSON(cur.anchor), anchor) &&
            Y.compareRelativePositions(Y.createRelativePositionFromJSON(cur.head), head);
          if (same) return;
        } catch {
          // a malformed old value: replace it
        }
      }
      this.awareness.setLocalStateField('cursor', { anchor: Y.relativePositionToJSON(anchor), head: Y.relativePositionToJSON(head) });
    }

    private build(view: EditorView): DecorationSet {
      const doc = this.ytext.doc;
      if (!doc) return Decoration.none;
      const len = view.state.doc.length;
      const ranges: Range<Decoration>[] = [];
      for (const [client, state] of this.awareness.getStates()) {
        if (client === this.awareness.clientID) continue;
        const cursor = state.cursor as { anchor?: unknown; head?: unknown } | null | undefined;
        if (!cursor) continue;
        const anchor = absolute(doc, this.ytext, cursor.anchor);
        const head = absolute(doc, this.ytext, cursor.head);
        if (anchor === null || head === null || anchor > len || head > len) continue;
        const user = (state.user ?? {}) as Partial<AwarenessUser>;
        const color = safeColor(user.color, '#30bced');
        const colorLight = safeColor(user.colorLight, `${color}33`);
        const name = typeof user.name === 'string' && user.name ? user.name.slice(0, 60) : '?';
        const from = Math.min(anchor, head);
        const to = Math.max(anchor, head);
        if (from < to) {
          // CodeMirror applies a `style` attribute through the CSSOM (style.cssText), which the policy allows.
          ranges.push(Decoration.mark({ class: 'cm-ySelection', attributes: { style: `background-color: ${colorLight}` } }).range(from, to));
        }
        ranges.push(Decoration.widget({ widget: new RemoteCaret(color, name), side: head > anchor ? -1 : 1 }).range(head));
      }
      return Decoration.set(ranges, true);
    }
  },
  { decorations: (v) => v.decorations },
);

const theme = EditorView.theme({
  '&': { minHeight: '20rem', fontSize: '0.875rem', backgroundColor: '#fff' },
  '&.cm-focused': { outline: '2px solid #2563eb', outlineOffset: '1px' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', minHeight: '20rem' },
  // Room above the first line for a caret's name label.
  '.cm-content': { padding: '1.25rem 0.5rem 1rem' },
  // Names stay visible (the stock theme shows them on hover only).
  '.cm-ySelectionInfo': { opacity: 1, fontFamily: 'system-ui, sans-serif', borderRadius: '2px', top: '-1.15em' },
});

/**
 * Typing over a selection is done by us rather than by the browser: replacing a
 * selection that spans lines, Chrome's own editing inserts elements with inline
 * styles (which the page policy refuses, and reports) before CodeMirror redraws.
 */
const typeOverSelection = EditorView.domEventHandlers({
  beforeinput(e, view) {
    if (e.inputType !== 'insertText' || !e.data || view.state.readOnly) return false;
    if (view.state.selection.ranges.every((r) => r.empty)) return false;
    e.preventDefault();
    view.dispatch(view.state.update(view.state.replaceSelection(e.data), { userEvent: 'input.type', scrollIntoView: true }));
    return true;
  },
});

export interface CoEditorOptions {
  ytext: Y.Text;
  awareness: Awareness;
  readOnly: boolean;
  /** The editor's accessible name. */
  label: string;
  placeholder?: string;
}

export interface CoEditor {
  view: EditorView;
  setReadOnly(readOnly: boolean): void;
  destroy(): void;
}

function readOnlyExt(readOnly: boolean): Extension {
  return [EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)];
}

/**
 * The editor goes into a shadow root of its own inside `parent`: CodeMirror
 * (style-mod) then installs its styles as constructed stylesheets
 * (`adoptedStyleSheets`), which the page policy allows, instead of a `<style>`
 * element in the document's head, which it refuses. Page styles (Tailwind) do
 * not reach inside; the editor's look is all in its themes.
 */
export function createCoEditor(parent: HTMLElement, opts: CoEditorOptions): CoEditor {
  const holder = document.createElement('div');
  holder.className = 'cm-host';
  parent.append(holder);
  const root = holder.attachShadow({ mode: 'open' });
  const collab = yCollab(opts.ytext, opts.awareness);
  // y-codemirror's own cursors need inline styles (see the top of the file).
  const bound = Array.isArray(collab) ? collab.filter((ext) => ext !== yRemoteSelections) : [collab];
  const editable = new Compartment();
  let current = opts.readOnly;
  const view = new EditorView({
    parent: root,
    root,
    state: EditorState.create({
      doc: opts.ytext.toString(),
      extensions: [
        Prec.high(keymap.of(yUndoManagerKeymap)),
        minimalSetup,
        markdown(),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ 'aria-label': opts.label, 'aria-multiline': 'true' }),
        opts.placeholder ? placeholder(opts.placeholder) : [],
        editable.of(readOnlyExt(current)),
        typeOverSelection,
        Prec.high(bound),
        yRemoteSelectionsTheme,
        remoteCursors,
        theme,
      ],
    }),
  });
  return {
    view,
    setReadOnly(readOnly) {
      if (readOnly === current) return;
      current = readOnly;
      view.dispatch({ effects: editable.reconfigure(readOnlyExt(readOnly)) });
    },
    destroy() {
      view.destroy();
      holder.remove();
    },
  };
}
