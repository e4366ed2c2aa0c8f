// The dashboard's shell: login, navigation from discovery, and routing on
// the URL's fragment (#/group/version/resource[/namespace/name]), so that the
// server serves one page and a token in the fragment never reaches a log.
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { discovery, follow, get, setToken, token, watchObjects, whenUnauthorized, whoami } from './api.js';
import { ResourceList } from './list.jsx';
import { Overview } from './overview.jsx';
import { Detail } from './detail.jsx';
import { useUsageColumns } from './metrics.jsx';
import './style.css';

// The sections of the navigation: [title, [[group, resource, label]]].
// Resources the cluster does not serve are left out; everything else
// discovery finds (custom resources among it) is under "More".
const SECTIONS = [
  ['Cluster', [['', 'nodes', 'Nodes'], ['', 'namespaces', 'Namespaces'], ['', 'events', 'Events']]],
  [
    'Workloads',
    [
      ['apps', 'deployments', 'Deployments'],
      ['apps', 'statefulsets', 'StatefulSets'],
      ['apps', 'daemonsets', 'DaemonSets'],
      ['apps', 'replicasets', 'ReplicaSets'],
      ['batch', 'jobs', 'Jobs'],
      ['batch', 'cronjobs', 'CronJobs'],
      ['', 'pods', 'Pods'],
      ['autoscaling', 'horizontalpodautoscalers', 'HPAs'],
    ],
  ],
  [
    'Network',
    [
      ['', 'services', 'Services'],
      ['discovery.k8s.io', 'endpointslices', 'EndpointSlices'],
      ['networking.k8s.io', 'ingresses', 'Ingresses'],
      ['gateway.networking.k8s.io', 'gateways', 'Gateways'],
      ['gateway.networking.k8s.io', 'httproutes', 'HTTPRoutes'],
      ['gateway.networking.k8s.io', 'grpcroutes', 'GRPCRoutes'],
      ['gateway.networking.k8s.io', 'tcproutes', 'TCPRoutes'],
      ['gateway.networking.k8s.io', 'udproutes', 'UDPRoutes'],
      ['gateway.networking.k8s.io', 'tlsroutes', 'TLSRoutes'],
      ['networking.k8s.io', 'networkpolicies', 'NetworkPolicies'],
    ],
  ],
  [
    'Storage and config',
    [
      ['', 'persistentvolumeclaims', 'PersistentVolumeClaims'],
      ['', 'persistentvolumes', 'PersistentVolumes'],
      ['storage.k8s.io', 'storageclasses', 'StorageClasses'],
      ['', 'configmaps', 'ConfigMaps'],
      ['', 'secrets', 'Secrets'],
    ],
  ],
];
const LISTED = new Set(SECTIONS.flatMap(([, items]) => items.map(([g, r]) => `${g}/${r}`)));

function parseRoute(hash) {
  const [p, q] = hash.replace(/^#\/?/, '').split('?');
  const parts = p.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(q || '');
  if (parts.length >= 3) {
    return {
      group: parts[0] === 'core' ? '' : parts[0],
      version: parts[1],
      resource: parts[2],
      namespace: parts[3] === '_' ? '' : parts[3],
      name: parts[4],
      tab: params.get('tab') || '',
    };
  }
  return { overview: true };
}

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const f = () => setHash(location.hash);
    addEventListener('hashchange', f);
    return () => removeEventListener('hashchange', f);
  }, []);
  return hash;
}

function Login({ message }) {
  const [value, setValue] = useState('');
  const submit = (e) => {
    e.preventDefault();
    setToken(value.trim());
    location.hash = '#/';
    location.reload();
  };
  return (
    <main class="login">
      <h1>skiff</h1>
      <form onSubmit={submit}>
        <label for="token">Bearer token</label>
        <textarea id="token" rows="4" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
        <p class="hint">
          Run <code>skiff dashboard</code> on a server for a login URL, or paste any token the API server accepts.
        </p>
        {message && (
          <p class="error" role="alert">
            {message}
          </p>
        )}
        <button type="submit">Log in</button>
      </form>
    </main>
  );
}

// useNamespaces follows the namespaces the user may list (null when RBAC
// forbids it: the namespace is then typed in).
function useNamespaces() {
  // undefined while loading, null when refused.
  const [names, setNames] = useState(undefined);
  useEffect(() => {
    const ctl = new AbortController();
    let set = new Set();
    follow(
      ctl.signal,
      async () => {
        const l = await get('/api/v1/namespaces', { signal: ctl.signal });
        set = new Set(l.items.map((n) => n.metadata.name));
        setNames([...set].sort());
        return l.metadata.resourceVersion;
      },
      (rv, seen) =>
        watchObjects('/api/v1/namespaces', rv, { signal: ctl.signal }, (ev) => {
          seen(ev.object.metadata.resourceVersion);
          if (ev.type === 'ADDED') set.add(ev.object.metadata.name);
          if (ev.type === 'DELETED') set.delete(ev.object.metadata.name);
          if (ev.type !== 'BOOKMARK') setNames([...set].sort());
        }),
    ).catch(() => setNames(null));
    return () => ctl.abort();
  }, []);
  return names;
}

function plural(kind) {
  if (/s$/.test(kind)) return `${kind}es`;
  if (/[^aeiou]y$/.test(kind)) return `${kind.slice(0, -1)}ies`;
  return `${kind}s`;
}

function ListPage({ res, namespace }) {
  const extra = useUsageColumns(res, namespace);
  return (
    <>
      <h1>{res.kind ? plural(res.kind) : res.resource}</h1>
      <ResourceList
        res={res}
        title={res.resource}
        namespace={namespace}
        includeObject={res.resource === 'nodes' && !res.group ? 'Object' : undefined}
        extra={extra}
      />
    </>
  );
}

function App() {
  const hash = useHash();
  const route = useMemo(() => parseRoute(hash), [hash]);
  const [resources, setResources] = useState(null);
  const [user, setUser] = useState(null);
  const [error, setError] = useState(null);
  const [namespace, setNamespace] = useState(localStorage.getItem('skiff.dashboard.namespace') || '');
  const namespaces = useNamespaces();
  useEffect(() => {
    discovery().then(setResources, setError);
    whoami().then((r) => setUser(r.status.userInfo), () => {});
  }, []);
  const chooseNamespace = (ns) => {
    setNamespace(ns);
    localStorage.setItem('skiff.dashboard.namespace', ns);
  };
  // A service account that may not list namespaces most likely works in
  // its own: start there rather than on lists of every namespace it would
  // be refused.
  useEffect(() => {
    const sa = user && user.username.match(/^system:serviceaccount:([^:]+):/);
    if (namespaces === null && !namespace && sa) setNamespace(sa[1]);
  }, [user, namespaces]);
  if (error) return <Login message={error.message} />;
  if (!resources) return <p class="loading">Loading…</p>;
  const find = (g, r) => resources.find((x) => x.group === g && x.resource === r);
  const more = resources.filter((r) => !LISTED.has(`${r.group}/${r.resource}`) && r.verbs.includes('list'));
  const groups = [...new Set(more.map((r) => r.group))].sort();
  let main;
  if (route.overview) {
    main = <Overview namespace={namespace} />;
  } else {
    const res = find(route.group, route.resource);
    if (!res) main = <p class="error">This cluster serves no {route.resource} in {route.group || 'the core group'}.</p>;
    // Keyed: another object starts from nothing, never from the last one's state.
    else if (route.name) main = <Detail key={`${res.group}/${res.resource}/${route.namespace}/${route.name}`} res={res} namespace={route.namespace} name={route.name} tab={route.tab} find={find} />;
    else
      main = <ListPage key={`${res.group}/${res.resource}/${namespace}`} res={res} namespace={res.namespaced ? namespace : ''} />;
  }
  const link = (r, label) => {
    const href = `#/${r.group || 'core'}/${r.version}/${r.resource}`;
    const current = !route.overview && route.group === r.group && route.resource === r.resource;
    return (
      <li>
        <a href={href} aria-current={current ? 'page' : undefined}>
          {label}
        </a>
      </li>
    );
  };
  return (
    <div class="shell">
      <header>
        <a class="brand" href="#/">
          skiff
        </a>
        <label>
          Namespace{' '}
          {namespaces ? (
            <select value={namespace} onChange={(e) => chooseNamespace(e.currentTarget.value)}>
              <option value="">all namespaces</option>
              {namespaces.map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          ) : (
            <input value={namespace} onChange={(e) => chooseNamespace(e.currentTarget.value)} placeholder="namespace" />
          )}
        </label>
        <span class="user" title={user ? (user.groups || []).join(', ') : ''}>
          {user ? user.username : ''}
        </span>
        <button
          type="button"
          onClick={() => {
            setToken('');
            location.reload();
          }}
        >
          Log out
        </button>
      </header>
      <nav aria-label="Resources">
        <ul>
          <li>
            <a href="#/" aria-current={route.overview ? 'page' : undefined}>
              Overview
            </a>
          </li>
        </ul>
        {SECTIONS.map(([title, items]) => {
          const present = items.map(([g, r, label]) => [find(g, r), label]).filter(([r]) => r);
          if (!present.length) return null;
          return (
            <details open>
              <summary>{title}</summary>
              <ul>{present.map(([r, label]) => link(r, label))}</ul>
            </details>
          );
        })}
        <details>
          <summary>More</summary>
          {groups.map((g) => (
            <>
              <h3>{g || 'core'}</h3>
              <ul>{more.filter((r) => r.group === g).map((r) => link(r, r.kind || r.resource))}</ul>
            </>
          ))}
        </details>
      </nav>
      <main>{main}</main>
    </div>
  );
}

function Root() {
  const [expired, setExpired] = useState(false);
  useEffect(() => whenUnauthorized(() => setExpired(true)), []);
  if (!token() || expired) return <Login message={expired ? 'The token was refused (401): log in again.' : ''} />;
  return <App />;
}

// A login URL carries its token in the fragment (#token=…): keep it for the
// session and take it out of the address bar and history.
function takeToken() {
  const m = location.hash.match(/^#token=(.+)$/);
  if (!m) return false;
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, '', `${location.pathname}#/`);
  return true;
}
takeToken();
// Another login URL opened in the same tab changes only the fragment.
addEventListener('hashchange', () => takeToken() && location.reload());
render(<Root />, document.getElementById('app'));
