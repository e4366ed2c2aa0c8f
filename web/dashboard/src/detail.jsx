// One object: its status, its YAML (editable, checked by a server-side dry
// run first, with the API's field errors shown at their lines), its events,
// the actions its kind has, and for a pod its logs and a terminal.
import { useEffect, useRef, useState } from 'preact/hooks';
import { parseDocument, stringify } from 'yaml';
import { ApiError, del, follow, get, path, patch, post, put, watchObjects } from './api.js';
import { ResourceList } from './list.jsx';
import { age } from './format.js';
import { Logs, Terminal } from './pod.jsx';
import { UsageCharts } from './charts.jsx';
import { useWatched } from './watch.js';
import { SimpleTable } from './table.jsx';

// fieldPath splits an API field path ("spec.containers[0].image",
// "metadata.annotations[example.com/x]") into keys and indexes.
export function fieldPath(field) {
  const out = [];
  const re = /([^.[\]]+)|\[([^\]]*)\]/g;
  let m;
  while ((m = re.exec(field))) {
    if (m[1] !== undefined) out.push(m[1]);
    else out.push(/^\d+$/.test(m[2]) ? Number(m[2]) : m[2].replace(/^"|"$/g, ''));
  }
  return out;
}

// lineOf finds the line (1-based) of field in the YAML text, or of its
// nearest parent that is there.
export function lineOf(text, field) {
  const doc = parseDocument(text);
  let p = fieldPath(field);
  while (p.length) {
    const node = doc.getIn(p, true);
    if (node && node.range) return text.slice(0, node.range[0]).split('\n').length;
    // A key without its value: look for the key's own line in the parent map.
    const parent = doc.getIn(p.slice(0, -1), true);
    if (parent && parent.items) {
      const pair = parent.items.find((i) => i.key && (i.key.value === p[p.length - 1] || i.key === p[p.length - 1]));
      if (pair && pair.key && pair.key.range) return text.slice(0, pair.key.range[0]).split('\n').length;
    }
    p = p.slice(0, -1);
  }
  return 1;
}

// causesOf turns an API error into [{field, message, line}]: the Status's
// causes, or for a strict decoding failure the unknown fields it names.
function causesOf(err, text) {
  let causes = err.causes.filter((c) => c.message || c.field);
  if (!causes.length) {
    const unknown = [...(err.message || '').matchAll(/unknown field "([^"]+)"/g)].map((m) => ({ field: m[1], message: `unknown field "${m[1]}"` }));
    causes = unknown.length ? unknown : [{ field: '', message: err.message }];
  }
  return causes.map((c) => ({ field: c.field || '', message: c.message, line: c.field ? lineOf(text, c.field) : 0 }));
}

function clean(obj) {
  const o = structuredClone(obj);
  if (o.metadata) delete o.metadata.managedFields;
  return o;
}

function Editor({ res, obj, onSaved }) {
  const [text, setText] = useState(() => stringify(clean(obj)));
  const [errors, setErrors] = useState([]);
  const [note, setNote] = useState('');
  const area = useRef(null);
  const gutter = useRef(null);
  const lines = text.split('\n').length;
  const bad = new Map(errors.filter((e) => e.line).map((e) => [e.line, e]));
  const jump = (line) => {
    const el = area.current;
    const lines = text.split('\n');
    const start = lines.slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
    el.focus();
    el.setSelectionRange(start, start + lines[line - 1].length);
    el.scrollTop = Math.max(0, (line - 5) * 18);
  };
  const submit = async (dryRun) => {
    setNote('');
    let body;
    try {
      const doc = parseDocument(text);
      if (doc.errors.length) {
        const e = doc.errors[0];
        setErrors([{ field: '', message: e.message, line: e.linePos ? e.linePos[0].line : 0 }]);
        return;
      }
      body = doc.toJS();
    } catch (e) {
      setErrors([{ field: '', message: e.message, line: 0 }]);
      return;
    }
    try {
      await put(path(res, obj.metadata.namespace, obj.metadata.name), body, true);
      if (dryRun) {
        setErrors([]);
        setNote('The server accepts this (dry run): nothing was changed.');
        return;
      }
      const saved = await put(path(res, obj.metadata.namespace, obj.metadata.name), body, false);
      setErrors([]);
      setNote(`Saved: resourceVersion ${saved.metadata.resourceVersion}.`);
      onSaved(saved);
    } catch (e) {
      if (!(e instanceof ApiError)) {
        // No answer (the connection failed): a dry run changed nothing, a
        // save may or may not have reached the server.
        const message = dryRun
          ? `No answer from the API server (${e.message}); nothing was changed. Try again.`
          : `No answer from the API server (${e.message}): the change may or may not have been saved. Reload the page to see the object as it is.`;
        setErrors([{ field: '', message, line: 0 }]);
        return;
      }
      const list = causesOf(e, text);
      setErrors(list);
      if (list[0] && list[0].line) jump(list[0].line);
    }
  };
  return (
    <section class="editor-box" aria-label="YAML">
      <div class="editor">
        <ol class="gutter" ref={gutter} aria-hidden="true">
          {Array.from({ length: lines }, (_, i) => {
            const e = bad.get(i + 1);
            return (
              <li class={e ? 'bad' : ''} title={e ? e.message : ''}>
                {i + 1}
              </li>
            );
          })}
        </ol>
        <textarea
          ref={area}
          aria-label="Object YAML"
          spellcheck={false}
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
          onScroll={(e) => (gutter.current.scrollTop = e.currentTarget.scrollTop)}
        />
      </div>
      <div class="actions">
        <button type="button" onClick={() => submit(true)}>
          Dry run
        </button>
        <button type="button" onClick={() => submit(false)}>
          Save
        </button>
        <button type="button" onClick={() => (setText(stringify(clean(obj))), setErrors([]))}>
          Revert
        </button>
      </div>
      {note && <p role="status">{note}</p>}
      {errors.length > 0 && (
        <ul class="field-errors" role="alert">
          {errors.map((e) => (
            <li data-field={e.field} data-line={e.line}>
              {e.line ? (
                <button type="button" class="link" onClick={() => jump(e.line)}>
                  line {e.line}
                </button>
              ) : null}{' '}
              {e.field && <code>{e.field}</code>} {e.message}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

const SCALABLE = new Set(['apps/deployments', 'apps/statefulsets', 'apps/replicasets']);
const RESTARTABLE = new Set(['apps/deployments', 'apps/statefulsets', 'apps/daemonsets']);

// rollback puts a Deployment's pod template back to its previous
// revision's, as `kubectl rollout undo` does.
async function rollback(find, obj) {
  const ns = obj.metadata.namespace;
  const sets = await get(`/apis/apps/v1/namespaces/${ns}/replicasets`);
  const revision = (rs) => Number((rs.metadata.annotations || {})['deployment.kubernetes.io/revision'] || 0);
  const owned = sets.items
    .filter((rs) => (rs.metadata.ownerReferences || []).some((o) => o.uid === obj.metadata.uid))
    .sort((a, b) => revision(b) - revision(a));
  if (owned.length < 2) throw new Error('no previous revision to roll back to');
  const template = structuredClone(owned[1].spec.template);
  delete template.metadata.labels['pod-template-hash'];
  await patch(path(find('apps', 'deployments'), ns, obj.metadata.name), [{ op: 'replace', path: '/spec/template', value: template }], 'application/json-patch+json');
  return `rolled back to revision ${revision(owned[1])}`;
}

// drain cordons the node and evicts its pods, as `kubectl drain
// --ignore-daemonsets` does: DaemonSet pods and mirror pods stay.
async function drain(find, node) {
  const name = node.metadata.name;
  await patch(path(find('', 'nodes'), '', name), { spec: { unschedulable: true } });
  const pods = await get(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${name}`)}`);
  const evict = pods.items.filter(
    (p) =>
      !(p.metadata.ownerReferences || []).some((o) => o.kind === 'DaemonSet') &&
      !(p.metadata.annotations || {})['kubernetes.io/config.mirror'] &&
      p.status.phase !== 'Succeeded' &&
      p.status.phase !== 'Failed',
  );
  const failed = [];
  await Promise.all(
    evict.map((p) =>
      post(`/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}/eviction`, {
        apiVersion: 'policy/v1',
        kind: 'Eviction',
        metadata: { name: p.metadata.name, namespace: p.metadata.namespace },
      }).catch((e) => failed.push(`${p.metadata.namespace}/${p.metadata.name}: ${e.message}`)),
    ),
  );
  if (failed.length) throw new Error(`cordoned; ${failed.length} of ${evict.length} pods not evicted: ${failed.join('; ')}`);
  return `cordoned and ${evict.length} pods evicted`;
}

function Actions({ res, obj, find, onDone }) {
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState(null);
  const id = `${res.group}/${res.resource}`;
  const run = async (label, f) => {
    setBusy(true);
    setMsg(null);
    try {
      const out = await f();
      setMsg({ ok: true, text: `${label}: ${out || 'done'}` });
      onDone();
    } catch (e) {
      setMsg({ ok: false, text: `${label}: ${e.message}` });
    }
    setBusy(false);
  };
  const p = path(res, obj.metadata.namespace, obj.metadata.name);
  const buttons = [];
  if (SCALABLE.has(id)) {
    buttons.push(
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          const n = Number(new FormData(e.currentTarget).get('replicas'));
          run('Scale', () => patch(`${p}/scale`, { spec: { replicas: n } }).then(() => `${n} replicas`));
        }}
      >
        <label>
          Replicas <input name="replicas" type="number" min="0" defaultValue={obj.spec.replicas} style="width:5em" />
        </label>
        <button type="submit" disabled={busy}>
          Scale
        </button>
      </form>,
    );
  }
  if (RESTARTABLE.has(id)) {
    buttons.push(
      <button
        type="button"
        disabled={busy}
        onClick={() =>
          run('Restart', () =>
            patch(p, { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } }, 'application/strategic-merge-patch+json').then(
              () => 'rollout restarted',
            ),
          )
        }
      >
        Restart
      </button>,
    );
  }
  if (id === 'apps/deployments') {
    buttons.push(
      <button type="button" disabled={busy} onClick={() => run('Roll back', () => rollback(find, obj))}>
        Roll back
      </button>,
    );
  }
  if (id === '/nodes') {
    const cordoned = !!obj.spec.unschedulable;
    buttons.push(
      <button
        type="button"
        disabled={busy}
        onClick={() => run(cordoned ? 'Uncordon' : 'Cordon', () => patch(p, { spec: { unschedulable: cordoned ? null : true } }).then(() => (cordoned ? 'uncordoned' : 'cordoned')))}
      >
        {cordoned ? 'Uncordon' : 'Cordon'}
      </button>,
      <button type="button" disabled={busy} onClick={() => confirm(`Drain ${obj.metadata.name}?`) && run('Drain', () => drain(find, obj))}>
        Drain
      </button>,
    );
  }
  buttons.push(
    <button
      type="button"
      class="danger"
      disabled={busy}
      onClick={() => confirm(`Delete ${res.kind || res.resource} ${obj.metadata.name}?`) && run('Delete', () => del(p).then(() => 'deletion requested'))}
    >
      Delete
    </button>,
  );
  return (
    <div class="actions" aria-label="Actions">
      {buttons}
      {msg && (
        <p class={msg.ok ? 'ok' : 'error'} role={msg.ok ? 'status' : 'alert'}>
          {msg.text}
        </p>
      )}
    </div>
  );
}

function Conditions({ obj }) {
  const conds = (obj.status && obj.status.conditions) || [];
  if (!conds.length) return null;
  return (
    <SimpleTable
      caption="Conditions"
      columns={['Type', 'Status', 'Reason', 'Message', 'Since']}
      rows={conds.map((c) => [c.type, c.status, c.reason, { text: c.message, class: 'wrap' }, age(c.lastTransitionTime)])}
    />
  );
}

// Rollout shows a workload's progress as `kubectl rollout status` reads it.
function Rollout({ obj }) {
  const s = obj.status || {};
  if (obj.kind === 'Deployment' || obj.kind === 'StatefulSet' || obj.kind === 'ReplicaSet') {
    const want = obj.spec.replicas ?? 1;
    return (
      <p class="rollout" data-testid="rollout">
        {s.updatedReplicas ?? s.replicas ?? 0} updated, {s.readyReplicas ?? 0} ready, {s.availableReplicas ?? 0} available of {want} desired
        <progress max={want || 1} value={s.readyReplicas ?? 0} aria-label="ready replicas" />
      </p>
    );
  }
  if (obj.kind === 'DaemonSet') {
    return (
      <p class="rollout">
        {s.updatedNumberScheduled ?? 0} updated, {s.numberReady ?? 0} ready of {s.desiredNumberScheduled ?? 0} desired
        <progress max={s.desiredNumberScheduled || 1} value={s.numberReady ?? 0} aria-label="ready pods" />
      </p>
    );
  }
  if (obj.kind === 'Job') {
    return (
      <p class="rollout">
        {s.succeeded ?? 0} succeeded, {s.active ?? 0} active, {s.failed ?? 0} failed of {obj.spec.completions ?? 1} completions
      </p>
    );
  }
  return null;
}

// Endpoints lists a Service's EndpointSlices, live: each address with its
// readiness and the node and pod behind it.
function Endpoints({ svc }) {
  const coll = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(svc.metadata.namespace)}/endpointslices`;
  const { items, error, loaded } = useWatched(coll, { labelSelector: `kubernetes.io/service-name=${svc.metadata.name}` });
  if (error) return <p class="error">Endpoints: {error.message}</p>;
  if (!loaded) return null;
  const slices = [...items.values()];
  const rows = slices.flatMap((sl) =>
    (sl.endpoints || []).map((ep) => ({
      addresses: ep.addresses.join(', '),
      ready: ep.conditions && ep.conditions.ready !== false,
      node: ep.nodeName || '',
      target: ep.targetRef ? `${ep.targetRef.kind}/${ep.targetRef.name}` : '',
      ports: (sl.ports || []).map((p) => `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol}`).join(', '),
    })),
  );
  return (
    <SimpleTable
      testid="endpoints"
      caption={`Endpoints (${rows.filter((r) => r.ready).length} ready of ${rows.length})`}
      columns={['Addresses', 'Ports', 'Ready', 'Node', 'Target']}
      rows={rows.map((r) => [r.addresses, r.ports, { text: r.ready ? 'ready' : 'not ready', class: r.ready ? 'ok' : 'bad' }, r.node, r.target])}
    />
  );
}

// useObject follows one object through a watch on its name.
function useObject(res, namespace, name) {
  const [state, setState] = useState({ obj: null, error: null, gone: false });
  useEffect(() => {
    const ctl = new AbortController();
    const coll = path(res, namespace);
    const field = `metadata.name=${name}`;
    follow(
      ctl.signal,
      async () => {
        const o = await get(path(res, namespace, name), { signal: ctl.signal });
        setState({ obj: o, error: null, gone: false });
        return o.metadata.resourceVersion;
      },
      (rv, seen) =>
        watchObjects(coll, rv, { fieldSelector: field, signal: ctl.signal }, (ev) => {
          seen(ev.object.metadata.resourceVersion);
          if (ev.type === 'BOOKMARK') return;
          setState({ obj: ev.object, error: null, gone: ev.type === 'DELETED' });
        }),
    ).catch((e) => setState((s) => ({ ...s, error: e })));
    return () => ctl.abort();
  }, [res, namespace, name]);
  return [state, (obj) => setState({ obj, error: null, gone: false })];
}

export function Detail({ res, namespace, name, tab, find }) {
  const [{ obj, error, gone }, setObj] = useObject(res, namespace, name);
  const base = `#/${res.group || 'core'}/${res.version}/${res.resource}/${namespace || '_'}/${encodeURIComponent(name)}`;
  const isPod = !res.group && res.resource === 'pods';
  const tabs = [['', 'Summary'], ['yaml', 'YAML'], ['events', 'Events']];
  if (isPod) tabs.push(['logs', 'Logs'], ['exec', 'Terminal']);
  if (error) return <p class="error" role="alert">{error.message}</p>;
  if (!obj) return <p>Loading…</p>;
  const events = find('', 'events');
  return (
    <article>
      <h1>
        {res.kind || res.resource} {namespace ? `${namespace}/` : ''}
        {name} {gone && <span class="bad">(deleted)</span>}
      </h1>
      <Actions res={res} obj={obj} find={find} onDone={() => {}} />
      <nav class="tabs" aria-label="Views">
        {tabs.map(([t, label]) => (
          <a href={t ? `${base}?tab=${t}` : base} aria-current={tab === t ? 'page' : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {tab === '' && (
        <>
          <Rollout obj={obj} />
          {(isPod || (!res.group && res.resource === 'nodes')) && (
            <UsageCharts kind={res.resource} namespace={namespace} name={name} />
          )}
          <Conditions obj={obj} />
          {!res.group && res.resource === 'services' && <Endpoints svc={obj} />}
          <dl class="meta">
            <dt>Created</dt>
            <dd>{obj.metadata.creationTimestamp} ({age(obj.metadata.creationTimestamp)} ago)</dd>
            <dt>Labels</dt>
            <dd>{Object.entries(obj.metadata.labels || {}).map(([k, v]) => <code class="tag">{`${k}=${v}`}</code>)}</dd>
            {isPod && (
              <>
                <dt>Node</dt>
                <dd>{obj.spec.nodeName || 'not scheduled'}</dd>
                <dt>Pod IP</dt>
                <dd>{obj.status.podIP || ''}</dd>
              </>
            )}
          </dl>
        </>
      )}
      {tab === 'yaml' && <Editor key={obj.metadata.uid} res={res} obj={obj} onSaved={setObj} />}
      {tab === 'events' && events && (
        <ResourceList res={events} namespace={namespace} title="events" baseField={`involvedObject.uid=${obj.metadata.uid}`} />
      )}
      {tab === 'logs' && isPod && <Logs pod={obj} />}
      {tab === 'exec' && isPod && <Terminal pod={obj} />}
    </article>
  );
}
