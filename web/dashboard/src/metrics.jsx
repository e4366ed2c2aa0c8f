// Usage from metrics.k8s.io (metrics-server, scraping every 15 s): read on
// that period, as the API offers no watch. A node or pod the API has no
// figures for yet shows "pending", never zero.
import { usePolled } from './watch.js';

export const SCRAPE_MS = 15000;

const SUFFIX = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

// quantity parses a Kubernetes resource.Quantity ("250m", "1Gi", "1e3").
export function quantity(q) {
  if (q === undefined || q === null) return NaN;
  const m = String(q).match(/^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/);
  if (!m || !(m[2] in SUFFIX)) return NaN;
  return parseFloat(m[1]) * SUFFIX[m[2]];
}

export function cpu(cores) {
  if (isNaN(cores)) return '';
  return cores < 1 ? `${Math.round(cores * 1000)}m` : `${cores.toFixed(2)}`;
}
export function bytes(b) {
  if (isNaN(b)) return '';
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b < 10 && i ? b.toFixed(1) : Math.round(b)}${units[i]}`;
}

// useUsage reads the usage of nodes or of a namespace's pods ('' for all)
// every SCRAPE_MS: a Map from "namespace/name" to {cpu, memory, containers},
// null until the first answer, or {error} when metrics.k8s.io is not served
// or not allowed.
export function useUsage(kind, namespace) {
  const coll = kind ? `/apis/metrics.k8s.io/v1beta1${namespace && kind === 'pods' ? `/namespaces/${namespace}` : ''}/${kind}` : '';
  return usePolled(coll, SCRAPE_MS, byObject);
}

// byObject sums a metrics list's containers per "namespace/name".
function byObject(l) {
  const m = new Map();
  for (const i of l.items || []) {
    let c = 0;
    let mem = 0;
    const list = i.containers || [{ usage: i.usage }];
    for (const x of list) {
      c += quantity(x.usage.cpu);
      mem += quantity(x.usage.memory);
    }
    m.set(`${i.metadata.namespace || ''}/${i.metadata.name}`, { cpu: c, memory: mem, containers: i.containers, timestamp: i.timestamp });
  }
  return m;
}

function usageOf(usage, meta) {
  if (!usage) return null;
  if (usage.error) return { error: usage.error };
  return usage.get(`${meta.namespace || ''}/${meta.name}`) || null;
}

function show(u, f) {
  if (u && u.error) return 'n/a';
  return u ? f(u) : 'pending';
}

// useUsageColumns adds usage (and, for nodes, capacity and allocatable) to
// the list of nodes or pods.
export function useUsageColumns(res, namespace) {
  const kind = !res.group && (res.resource === 'nodes' || res.resource === 'pods') ? res.resource : '';
  const usage = useUsage(kind, namespace);
  if (kind === 'nodes') {
    const pct = (used, total) => (isNaN(total) || !total ? '' : ` (${Math.round((100 * used) / total)}%)`);
    return [
      {
        name: 'CPU used',
        cell: (r) => show(usageOf(usage, r.object.metadata), (u) => cpu(u.cpu) + pct(u.cpu, quantity(r.object.status?.allocatable?.cpu))),
      },
      {
        name: 'Memory used',
        cell: (r) =>
          show(usageOf(usage, r.object.metadata), (u) => bytes(u.memory) + pct(u.memory, quantity(r.object.status?.allocatable?.memory))),
      },
      {
        name: 'CPU alloc/cap',
        cell: (r) => `${cpu(quantity(r.object.status?.allocatable?.cpu))} / ${cpu(quantity(r.object.status?.capacity?.cpu))}`,
      },
      {
        name: 'Memory alloc/cap',
        cell: (r) => `${bytes(quantity(r.object.status?.allocatable?.memory))} / ${bytes(quantity(r.object.status?.capacity?.memory))}`,
      },
      { name: 'Pods cap', cell: (r) => r.object.status?.capacity?.pods || '' },
    ];
  }
  if (kind === 'pods') {
    return [
      { name: 'CPU', cell: (r) => show(usageOf(usage, r.object.metadata), (u) => cpu(u.cpu)) },
      { name: 'Memory', cell: (r) => show(usageOf(usage, r.object.metadata), (u) => bytes(u.memory)) },
    ];
  }
  return [];
}
