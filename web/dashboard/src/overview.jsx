// The cluster at a glance: nodes Ready, pods by phase, recent warnings.
import { useEffect, useState } from 'preact/hooks';
import { follow, get, watchObjects } from './api.js';
import { age } from './format.js';

const PHASES = ['Running', 'Pending', 'Succeeded', 'Failed', 'Unknown'];
const WARNINGS = 20;

function ready(node) {
  const c = (node.status.conditions || []).find((c) => c.type === 'Ready');
  return c && c.status === 'True';
}

// useWatched follows a collection read whole (as objects), keyed by uid.
export function useWatched(coll, fieldSelector) {
  const [state, setState] = useState({ items: new Map(), error: null });
  useEffect(() => {
    const ctl = new AbortController();
    let items = new Map();
    follow(
      ctl.signal,
      async () => {
        const q = fieldSelector ? `?fieldSelector=${encodeURIComponent(fieldSelector)}` : '';
        const l = await get(coll + q, { signal: ctl.signal });
        items = new Map(l.items.map((o) => [o.metadata.uid, o]));
        setState({ items, error: null });
        return l.metadata.resourceVersion;
      },
      (rv, seen) =>
        watchObjects(coll, rv, { fieldSelector, signal: ctl.signal }, (ev) => {
          seen(ev.object.metadata.resourceVersion);
          if (ev.type === 'BOOKMARK') return;
          items = new Map(items);
          if (ev.type === 'DELETED') items.delete(ev.object.metadata.uid);
          else items.set(ev.object.metadata.uid, ev.object);
          setState({ items, error: null });
        }),
    ).catch((e) => setState((s) => ({ ...s, error: e })));
    return () => ctl.abort();
  }, [coll, fieldSelector]);
  return state;
}

// podPhases counts pods by phase without reading them all: a list of one
// item per phase says how many remain (remainingItemCount). Counts are read
// again every 5 s while the page is open.
function usePodPhases() {
  const [counts, setCounts] = useState(null);
  useEffect(() => {
    let stop = false;
    let timer;
    const read = async () => {
      try {
        const out = {};
        await Promise.all(
          PHASES.map(async (p) => {
            const l = await get(`/api/v1/pods?limit=1&fieldSelector=${encodeURIComponent(`status.phase=${p}`)}`);
            out[p] = l.items.length + (l.metadata.remainingItemCount || 0);
          }),
        );
        if (!stop) setCounts(out);
      } catch (e) {
        if (!stop) setCounts({ error: e });
      }
      if (!stop) timer = setTimeout(read, 5000);
    };
    read();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, []);
  return counts;
}

function when(e) {
  return e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp || '';
}

export function Overview() {
  const nodes = useWatched('/api/v1/nodes');
  const warnings = useWatched('/api/v1/events', 'type=Warning');
  const phases = usePodPhases();
  const all = [...nodes.items.values()];
  const readyCount = all.filter(ready).length;
  const recent = [...warnings.items.values()].sort((a, b) => when(b).localeCompare(when(a))).slice(0, WARNINGS);
  return (
    <>
      <h1>Overview</h1>
      <div class="cards">
        <section class="card" aria-labelledby="nodes-h">
          <h2 id="nodes-h">Nodes</h2>
          {nodes.error ? (
            <p class="error">{nodes.error.message}</p>
          ) : (
            <p class="big" data-testid="nodes-ready">
              {readyCount} / {all.length} Ready
            </p>
          )}
          <ul class="plain">
            {all
              .filter((n) => !ready(n))
              .slice(0, 10)
              .map((n) => (
                <li class="bad">
                  <a href={`#/core/v1/nodes/_/${n.metadata.name}`}>{n.metadata.name}</a> not Ready
                </li>
              ))}
          </ul>
        </section>
        <section class="card" aria-labelledby="pods-h">
          <h2 id="pods-h">Pods by phase</h2>
          {!phases ? (
            <p>…</p>
          ) : phases.error ? (
            <p class="error">{phases.error.message}</p>
          ) : (
            <dl class="phases">
              {PHASES.map((p) => (
                <div class={`phase ${p}`}>
                  <dt>{p}</dt>
                  <dd data-phase={p}>{phases[p]}</dd>
                </div>
              ))}
            </dl>
          )}
        </section>
      </div>
      <section aria-labelledby="warn-h">
        <h2 id="warn-h">Recent warnings</h2>
        {warnings.error && <p class="error">{warnings.error.message}</p>}
        {recent.length === 0 && !warnings.error && <p>No warnings.</p>}
        <table class="rows">
          <thead>
            <tr>
              <th scope="col">Age</th>
              <th scope="col">Object</th>
              <th scope="col">Reason</th>
              <th scope="col">Message</th>
              <th scope="col">Count</th>
            </tr>
          </thead>
          <tbody>
            {recent.map((e) => (
              <tr>
                <td>{age(when(e))}</td>
                <td>
                  {e.involvedObject.kind}/{e.involvedObject.namespace ? `${e.involvedObject.namespace}/` : ''}
                  {e.involvedObject.name}
                </td>
                <td>{e.reason}</td>
                <td class="wrap">{e.message}</td>
                <td>{e.count || 1}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </>
  );
}
