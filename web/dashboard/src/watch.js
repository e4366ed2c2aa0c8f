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
