// useWatched follows a collection read whole, as objects, keyed by uid:
// {items: Map, error}. The list and its watch take the same selectors.
import { useEffect, useState } from 'preact/hooks';
import { follow, get, watchObjects } from './api.js';

export function useWatched(coll, { fieldSelector, labelSelector } = {}) {
  const [state, setState] = useState({ items: new Map(), error: null, loaded: false });
  useEffect(() => {
    const ctl = new AbortController();
    let items = new Map();
    const q = new URLSearchParams();
    if (fieldSelector) q.set('fieldSelector', fieldSelector);
    if (labelSelector) q.set('labelSelector', labelSelector);
    follow(
      ctl.signal,
      async () => {
        const l = await get(`${coll}${q.size ? `?${q}` : ''}`, { signal: ctl.signal });
        items = new Map(l.items.map((o) => [o.metadata.uid, o]));
        setState({ items, error: null, loaded: true });
        return l.metadata.resourceVersion;
      },
      (rv, seen) =>
        watchObjects(coll, rv, { fieldSelector, labelSelector, signal: ctl.signal }, (ev) => {
          seen(ev.object.metadata.resourceVersion);
          if (ev.type === 'BOOKMARK') return;
          items = new Map(items);
          if (ev.type === 'DELETED') items.delete(ev.object.metadata.uid);
          else items.set(ev.object.metadata.uid, ev.object);
          setState({ items, error: null, loaded: true });
        }),
    ).catch((e) => setState((s) => ({ ...s, error: e })));
    return () => ctl.abort();
  }, [coll, fieldSelector, labelSelector]);
  return state;
}

// usePolled reads url ('' for nothing) now and every ms after each answer,
// for what the API offers no watch of (metrics, the server's counts):
// null until the first answer, then read(json), or {error}.
export function usePolled(url, ms, read = (json) => json) {
  const [state, setState] = useState(null);
  useEffect(() => {
    if (!url) return undefined;
    let stop = false;
    let timer;
    const poll = async () => {
      try {
        const v = read(await get(url));
        if (!stop) setState(v);
      } catch (e) {
        if (!stop) setState({ error: e });
      }
      if (!stop) timer = setTimeout(poll, ms);
    };
    poll();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [url, ms]);
  return state;
}
