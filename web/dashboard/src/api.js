// The Kubernetes API on the page's own origin, called with the user's bearer
// token: the API server authenticates and RBAC decides every request.

const TOKEN_KEY = 'skiff.dashboard.token';
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';

let onUnauthorized = () => {};

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}
// whenUnauthorized is called on any 401: the token expired or was revoked.
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

// ApiError carries the API's Status: its message, reason and causes (field
// errors), shown to the user as the API wrote them.
export class ApiError extends Error {
  constructor(code, status) {
    super((status && status.message) || `HTTP ${code}`);
    this.code = code;
    this.status = status || {};
  }
  get causes() {
    return (this.status.details && this.status.details.causes) || [];
  }
}

async function failure(r) {
  let status = null;
  try {
    status = await r.json();
  } catch {
    status = { message: `${r.status} ${r.statusText}` };
  }
  if (r.status === 401) onUnauthorized();
  return new ApiError(r.status, status);
}

// Chrome drops every open connection when the host's network changes (a
// pod's veth appearing is enough: ERR_NETWORK_CHANGED), failing requests
// that no server answered with a TypeError. Reads are tried again a few
// times, and so are dry runs; writes are not (one may have reached the server).
const retries = 3;
const retryable = (method, path) =>
  method === 'GET' || path.endsWith('/selfsubjectreviews') || path.includes('dryRun=All');

export async function request(path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send(path, opts);
    } catch (e) {
      const method = opts.method || 'GET';
      if (!(e instanceof TypeError) || attempt >= retries || !retryable(method, path) || opts.signal?.aborted) throw e;
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
    }
  }
}

async function send(path, { method = 'GET', body, type, accept, signal } = {}) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: accept || 'application/json' };
  if (body !== undefined) headers['Content-Type'] = type || 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  if (!r.ok) throw await failure(r);
  return r;
}

export async function get(path, opts) {
  return (await request(path, opts)).json();
}
export const patch = (path, body, type = 'application/merge-patch+json') =>
  request(path, { method: 'PATCH', body, type }).then((r) => r.json());
export const post = (path, body) => request(path, { method: 'POST', body }).then((r) => r.json());
export const put = (path, body, dryRun) =>
  request(dryRun ? `${path}?dryRun=All&fieldValidation=Strict` : `${path}?fieldValidation=Strict`, {
    method: 'PUT',
    body,
  }).then((r) => r.json());
export const del = (path) =>
  request(path, { method: 'DELETE', body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' } });

// path names a resource's collection or one object. r is a discovered
// resource: {group, version, resource, namespaced}.
export function path(r, namespace, name, sub) {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.resource}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '' && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// lines reads a streamed response body line by line (watch events, logs)
// until it ends or signal aborts.
export async function lines(response, each) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      each(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (buf) each(buf);
}

// listTable reads one page of a collection as the server prints it (the
// columns of `kubectl get`), with each row's object metadata.
export function listTable(coll, { labelSelector, fieldSelector, limit = 500, cont, signal, includeObject = 'Metadata' } = {}) {
  return get(coll + query({ labelSelector, fieldSelector, limit, continue: cont, includeObject }), {
    accept: TABLE,
    signal,
  });
}

// watchTable follows a collection from resourceVersion, as Tables of one row
// each, calling each({type, table}) for every event and bookmark({rv}) for
// bookmarks. It returns when the server ends the watch (a timeout) or
// signal aborts; a 410 (the version is too old) throws an ApiError with code
// 410.
export async function watchTable(coll, rv, { labelSelector, fieldSelector, signal, includeObject = 'Metadata' }, each) {
  const r = await request(
    coll +
      query({
        watch: 'true',
        resourceVersion: rv,
        allowWatchBookmarks: 'true',
        labelSelector,
        fieldSelector,
        includeObject,
        timeoutSeconds: 300 + Math.floor(Math.random() * 60),
      }),
    { accept: TABLE, signal },
  );
  await lines(r, (line) => {
    if (!line.trim()) return;
    const ev = JSON.parse(line);
    if (ev.type === 'ERROR') {
      throw new ApiError(ev.object.code || 500, ev.object);
    }
    each(ev);
  });
}

// watchObjects is watchTable's plain-JSON twin, for collections the page
// reads whole (nodes, warnings).
export async function watchObjects(coll, rv, { fieldSelector, labelSelector, signal }, each) {
  const r = await request(
    coll + query({ watch: 'true', resourceVersion: rv, allowWatchBookmarks: 'true', fieldSelector, labelSelector, timeoutSeconds: 300 }),
    { signal },
  );
  await lines(r, (line) => {
    if (!line.trim()) return;
    const ev = JSON.parse(line);
    if (ev.type === 'ERROR') throw new ApiError(ev.object.code || 500, ev.object);
    each(ev);
  });
}

// follow keeps a watch going: start lists (and returns the list's
// resourceVersion), watch follows from a version. After the server ends a
// watch or the network drops, it resumes from the last version seen, without
// a reload and so without duplicate rows; only when that version has expired
// (410) does it list again. It returns when signal aborts.
export async function follow(signal, start, watch) {
  let rv = null;
  let delay = 500;
  while (!signal.aborted) {
    try {
      if (rv === null) rv = await start();
      await watch(rv, (next) => {
        rv = next;
        delay = 500;
      });
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.code === 410) {
        rv = null;
        continue;
      }
      // The API's refusals (401, 403, 404, …) are final; a dropped
      // connection, a timeout or an overloaded server are retried.
      if (e instanceof ApiError && e.code < 500 && e.code !== 429) throw e;
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}

// discovery reads every group's resources in one request (aggregated
// discovery, apidiscovery.k8s.io/v2): [{group, version, resource, kind,
// namespaced, verbs, subresources}] for each group's preferred version.
export async function discovery() {
  const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';
  const [core, groups] = await Promise.all([get('/api', { accept }), get('/apis', { accept })]);
  const out = [];
  for (const list of [core, groups]) {
    for (const g of list.items || []) {
      const v = (g.versions || [])[0];
      if (!v) continue;
      for (const r of v.resources || []) {
        out.push({
          group: g.metadata.name || '',
          version: v.version,
          resource: r.resource,
          kind: r.responseKind && r.responseKind.kind,
          namespaced: r.scope === 'Namespaced',
          verbs: r.verbs || [],
          subresources: (r.subresources || []).map((s) => s.subresource),
        });
      }
    }
  }
  return out;
}

// streamLogs follows a container's log with the kubelet's timestamps,
// calling each(timestamp, text) until signal aborts; since resumes after a
// timestamp (RFC 3339, the API takes whole seconds).
export async function streamLogs(ns, pod, container, since, signal, each) {
  const r = await request(
    `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(pod)}/log` +
      query({
        container,
        follow: 'true',
        timestamps: 'true',
        tailLines: since ? undefined : 1000,
        sinceTime: since ? since.replace(/\.\d+Z$/, 'Z') : undefined,
      }),
    { accept: '*/*', signal },
  );
  await lines(r, (line) => {
    const i = line.indexOf(' ');
    each(line.slice(0, i), line.slice(i + 1));
  });
}

function base64url(s) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

// execSocket opens an exec session over WebSocket (channel protocol v4),
// carrying the token in a subprotocol as browsers cannot set headers on a
// WebSocket (the API server accepts base64url.bearer.authorization.k8s.io).
export function execSocket(ns, pod, container, command) {
  const q = new URLSearchParams({ container, stdin: 'true', stdout: 'true', stderr: 'true', tty: 'true' });
  for (const c of command) q.append('command', c);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/namespaces/${encodeURIComponent(
    ns,
  )}/pods/${encodeURIComponent(pod)}/exec?${q}`;
  const ws = new WebSocket(url, ['v4.channel.k8s.io', `base64url.bearer.authorization.k8s.io.${base64url(token())}`]);
  ws.binaryType = 'arraybuffer';
  return ws;
}

export const whoami = () =>
  post('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'SelfSubjectReview',
  });
