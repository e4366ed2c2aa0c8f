// A live list of any resource, with the columns the server prints for it
// (`kubectl get`'s, custom resources' additionalPrinterColumns included),
// read a page at a time (limit/continue), filtered on the server (label and
// field selectors), kept current by a watch, and virtualised: only the rows
// in view are in the document.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { follow, listTable, path, watchTable } from './api.js';
import { age } from './format.js';

const ROW = 30; // px, one row's height (style.css .rows tr)
const PAGE = 500;

function key(meta) {
  return meta.uid || `${meta.namespace || ''}/${meta.name}`;
}
function order(a, b) {
  const x = a.object.metadata;
  const y = b.object.metadata;
  return (x.namespace || '').localeCompare(y.namespace || '') || x.name.localeCompare(y.name);
}

// useTable lists and watches coll; it returns {columns, rows, more,
// remaining, error, loadMore}.
export function useTable(coll, selectors) {
  // selectors: {labelSelector, fieldSelector, includeObject}
  const [state, setState] = useState({ columns: [], rows: new Map(), cont: '', remaining: 0, error: null, version: 0 });
  const contRef = useRef('');
  const abort = useRef(null);
  useEffect(() => {
    const ctl = new AbortController();
    abort.current = ctl;
    let rows = new Map();
    let columns = [];
    let pending = false;
    const publish = () => {
      if (pending) return;
      pending = true;
      // Batch a burst of events into one render.
      setTimeout(() => {
        pending = false;
        if (!ctl.signal.aborted) setState((s) => ({ ...s, columns, rows, version: s.version + 1 }));
      }, 30);
    };
    const start = async () => {
      const t = await listTable(coll, { ...selectors, limit: PAGE, signal: ctl.signal });
      columns = t.columnDefinitions || columns;
      rows = new Map();
      for (const r of t.rows || []) rows.set(key(r.object.metadata), r);
      contRef.current = t.metadata.continue || '';
      setState((s) => ({
        ...s,
        columns,
        rows,
        cont: contRef.current,
        remaining: t.metadata.remainingItemCount || 0,
        error: null,
        version: s.version + 1,
      }));
      return t.metadata.resourceVersion;
    };
    follow(ctl.signal, start, (rv, seen) =>
      watchTable(coll, rv, { ...selectors, signal: ctl.signal }, (ev) => {
        const t = ev.object;
        if (t.columnDefinitions && t.columnDefinitions.length) columns = t.columnDefinitions;
        if (ev.type === 'BOOKMARK') {
          seen((t.metadata && t.metadata.resourceVersion) || (t.rows && t.rows[0] && t.rows[0].object.metadata.resourceVersion));
          return;
        }
        rows = new Map(rows);
        for (const r of t.rows || []) {
          const k = key(r.object.metadata);
          if (ev.type === 'DELETED') rows.delete(k);
          else rows.set(k, r);
          seen(r.object.metadata.resourceVersion);
        }
        publish();
      }),
    ).catch((e) => {
      if (!ctl.signal.aborted) setState((s) => ({ ...s, error: e }));
    });
    return () => ctl.abort();
  }, [coll, selectors.labelSelector, selectors.fieldSelector, selectors.includeObject]);

  const loadMore = async () => {
    if (!contRef.current) return;
    const t = await listTable(coll, { ...selectors, limit: PAGE, cont: contRef.current, signal: abort.current.signal });
    contRef.current = t.metadata.continue || '';
    setState((s) => {
      const rows = new Map(s.rows);
      for (const r of t.rows || []) if (!rows.has(key(r.object.metadata))) rows.set(key(r.object.metadata), r);
      return { ...s, rows, cont: contRef.current, remaining: t.metadata.remainingItemCount || 0, version: s.version + 1 };
    });
  };
  return { ...state, loadMore };
}

export function cellText(v) {
  if (v === null || v === undefined) return '<none>';
  if (Array.isArray(v)) return v.join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ResourceList shows res in namespace ('' for all). extra: columns the page
// adds ({name, cell(row) → text}), e.g. usage from metrics.k8s.io.
export function ResourceList({ res, namespace, extra = [], includeObject, title, baseField = '' }) {
  const [labelSelector, setLabel] = useState('');
  const [fieldSelector, setField] = useState('');
  const [draft, setDraft] = useState({ label: '', field: '' });
  const [filter, setFilter] = useState('');
  const coll = path(res, namespace);
  const selectors = useMemo(
    () => ({ labelSelector, fieldSelector: [baseField, fieldSelector].filter(Boolean).join(','), includeObject }),
    [labelSelector, fieldSelector, includeObject, baseField],
  );
  const t = useTable(coll, selectors);
  const [scroll, setScroll] = useState(0);
  // The server prints Age at the time of the event; the page keeps it current.
  const [, tick] = useState(0);
  useEffect(() => {
    const i = setInterval(() => tick((n) => n + 1), 5000);
    return () => clearInterval(i);
  }, []);
  const [height, setHeight] = useState(600);
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const columns = t.columns.filter((c) => c.priority === 0 || c.priority === undefined);
  const nsCol = res.namespaced && !namespace;
  const sorted = useMemo(() => {
    let all = [...t.rows.values()];
    if (filter) {
      const f = filter.toLowerCase();
      all = all.filter((r) => r.object.metadata.name.toLowerCase().includes(f) || (r.object.metadata.namespace || '').includes(f));
    }
    return all.sort(order);
  }, [t.version, filter]);
  const first = Math.max(0, Math.floor(scroll / ROW) - 10);
  const last = Math.min(sorted.length, first + Math.ceil(height / ROW) + 20);
  const shown = sorted.slice(first, last);

  const submit = (e) => {
    e.preventDefault();
    setLabel(draft.label.trim());
    setField(draft.field.trim());
  };
  return (
    <section class="list" aria-label={title || res.resource}>
      <form class="filters" onSubmit={submit}>
        <label>
          Name <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="filter loaded rows" />
        </label>
        <label>
          Labels <input value={draft.label} onInput={(e) => setDraft({ ...draft, label: e.currentTarget.value })} placeholder="app=web,tier!=db" />
        </label>
        <label>
          Fields <input value={draft.field} onInput={(e) => setDraft({ ...draft, field: e.currentTarget.value })} placeholder="status.phase=Running" />
        </label>
        <button type="submit">Apply</button>
        <span class="count" role="status">
          {sorted.length} shown{t.cont ? `, ${t.remaining ? `${t.remaining} ` : ''}more on the server` : ''}
        </span>
        {t.cont && (
          <button type="button" onClick={t.loadMore}>
            Load {PAGE} more
          </button>
        )}
      </form>
      {t.error && (
        <p class="error" role="alert">
          {t.error.message}
        </p>
      )}
      <div class="scroll" ref={box} onScroll={(e) => setScroll(e.currentTarget.scrollTop)}>
        <table class="rows" data-resource={res.resource}>
          <thead>
            <tr>
              {nsCol && <th scope="col">Namespace</th>}
              {columns.map((c) => (
                <th scope="col" title={c.description}>
                  {c.name}
                </th>
              ))}
              {extra.map((c) => (
                <th scope="col">{c.name}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {first > 0 && <tr style={{ height: `${first * ROW}px` }} aria-hidden="true" />}
            {shown.map((r) => {
              const m = r.object.metadata;
              return (
                <tr key={key(m)} data-name={m.name} data-namespace={m.namespace || ''}>
                  {nsCol && <td>{m.namespace}</td>}
                  {columns.map((c, i) => {
                    const idx = t.columns.indexOf(c);
                    const text = c.name === 'Age' && m.creationTimestamp ? age(m.creationTimestamp) : cellText(r.cells[idx]);
                    return i === 0 ? (
                      <td>
                        <a href={`#/${res.group || 'core'}/${res.version}/${res.resource}/${m.namespace || '_'}/${m.name}`}>
                          {text}
                        </a>
                      </td>
                    ) : (
                      <td>{text}</td>
                    );
                  })}
                  {extra.map((c) => (
                    <td>{c.cell(r)}</td>
                  ))}
                </tr>
              );
            })}
            {last < sorted.length && <tr style={{ height: `${(sorted.length - last) * ROW}px` }} aria-hidden="true" />}
          </tbody>
        </table>
      </div>
    </section>
  );
}
