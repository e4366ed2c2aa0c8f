// Charts of a node's or a pod's CPU and memory over the last hour, from the
// server's usage history (internal/dashboard: metrics.k8s.io sampled every
// 30 s, kept in memory for an hour).
import { usePolled } from './watch.js';
import { bytes, cpu } from './metrics.jsx';

const W = 480;
const H = 120;

function Chart({ title, times, values, format }) {
  const present = values.filter((v) => v !== null);
  if (!present.length) {
    return (
      <figure class="chart">
        <figcaption>{title}</figcaption>
        <p class="count">pending: no figures yet</p>
      </figure>
    );
  }
  const max = Math.max(...present) || 1;
  const t0 = times[0];
  const span = Math.max(times[times.length - 1] - t0, 1);
  // A line per run of values, broken where there were none.
  const runs = [];
  let run = [];
  values.forEach((v, i) => {
    if (v === null) {
      if (run.length) runs.push(run);
      run = [];
      return;
    }
    run.push(`${((times[i] - t0) / span) * W},${H - (v / max) * (H - 4)}`);
  });
  if (run.length) runs.push(run);
  const last = present[present.length - 1];
  return (
    <figure class="chart">
      <figcaption>
        {title}: {format(last)} now, up to {format(max)}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title} over the last ${Math.round(span / 60)} minutes, up to ${format(max)}`}>
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        {runs.map((r) =>
          r.length === 1 ? <circle cx={r[0].split(',')[0]} cy={r[0].split(',')[1]} r="2" /> : <polyline points={r.join(' ')} />,
        )}
      </svg>
      <div class="range">
        <span>{new Date(t0 * 1000).toLocaleTimeString()}</span>
        <span>{new Date(times[times.length - 1] * 1000).toLocaleTimeString()}</span>
      </div>
    </figure>
  );
}

// UsageCharts shows one node's (namespace '') or pod's usage history,
// read again every 30 s.
export function UsageCharts({ kind, namespace, name }) {
  const q = new URLSearchParams({ name });
  if (namespace) q.set('namespace', namespace);
  const data = usePolled(`/dashboard/api/v1/usage/${kind}?${q}`, 30000);
  if (!data) return null;
  if (data.error) return <p class="count">Usage history: {data.error.message}</p>;
  const s = data.series[0];
  return (
    <section class="charts" aria-label="Usage over the last hour">
      <Chart title="CPU (cores)" times={data.times} values={s ? s.cpu : []} format={cpu} />
      <Chart title="Memory" times={data.times} values={s ? s.memory : []} format={bytes} />
    </section>
  );
}
