// The cluster at a glance: nodes Ready, pods by phase, recent warnings.
import { usePolled, useWatched } from './watch.js';
import { SimpleTable } from './table.jsx';
import { age } from './format.js';

const PHASES = ['Running', 'Pending', 'Succeeded', 'Failed', 'Unknown'];
const WARNINGS = 20;

function ready(node) {
  const c = (node.status.conditions || []).find((c) => c.type === 'Ready');
  return c && c.status === 'True';
}

// usePodPhases reads the count of pods in each phase, in namespace or ''
// for all, every 5 s: from the server's one cache of pods reduced to their
// phase (internal/dashboard), as the API cannot count without listing.
function usePodPhases(namespace) {
  return usePolled(`/dashboard/api/v1/pods/phases${namespace ? `?namespace=${encodeURIComponent(namespace)}` : ''}`, 5000);
}

function when(e) {
  return e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp || '';
}

export function Overview({ namespace }) {
  const nodes = useWatched('/api/v1/nodes');
  const warnings = useWatched('/api/v1/events', { fieldSelector: 'type=Warning' });
  const phases = usePodPhases(namespace);
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
          ) : !nodes.loaded ? (
            <p>…</p>
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
          <h2 id="pods-h">Pods by phase{namespace ? ` in ${namespace}` : ''}</h2>
          {!phases ? (
            <p>…</p>
          ) : phases.error ? (
            <p class="error">{phases.error.message}</p>
          ) : (
            <dl class="phases">
              {PHASES.map((p) => (
                <div class={`phase ${p}`}>
                  <dt>{p}</dt>
                  <dd data-phase={p}>{phases.phases[p] || 0}</dd>
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
        <SimpleTable
          columns={['Age', 'Object', 'Reason', 'Message', 'Count']}
          rows={recent.map((e) => [
            age(when(e)),
            `${e.involvedObject.kind}/${e.involvedObject.namespace ? `${e.involvedObject.namespace}/` : ''}${e.involvedObject.name}`,
            e.reason,
            { text: e.message, class: 'wrap' },
            e.count || 1,
          ])}
        />
      </section>
    </>
  );
}
