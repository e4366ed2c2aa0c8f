// A pod's logs, streamed (follow), and a terminal in one of its containers
// (exec over WebSocket).
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, execSocket, streamLogs } from './api.js';

const MAX_LINES = 5000;

function containers(pod) {
  return [...(pod.spec.initContainers || []), ...pod.spec.containers].map((c) => c.name);
}

function ContainerPicker({ pod, value, onChange }) {
  const names = containers(pod);
  if (names.length < 2) return null;
  return (
    <label>
      Container{' '}
      <select value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {names.map((n) => (
          <option value={n}>{n}</option>
        ))}
      </select>
    </label>
  );
}

export function Logs({ pod }) {
  const [container, setContainer] = useState(pod.spec.containers[0].name);
  const [lines, setLines] = useState([]);
  const [state, setState] = useState('connecting');
  const [stick, setStick] = useState(true);
  const box = useRef(null);
  useEffect(() => {
    const ctl = new AbortController();
    let buf = [];
    let pending = false;
    let last = ''; // the timestamp of the last line shown
    setLines([]);
    const flush = () => {
      pending = false;
      setLines(buf.length > MAX_LINES ? (buf = buf.slice(-MAX_LINES)) : buf.slice());
    };
    const each = (ts, text) => {
      // On a resumed stream the kubelet repeats the last second's lines.
      if (last && ts <= last) return;
      last = ts;
      buf.push(text);
      if (!pending) {
        pending = true;
        setTimeout(flush, 50);
      }
    };
    // The stream ends when the container does, or breaks with the
    // connection: then it resumes after the last line, without a reload.
    (async () => {
      let delay = 500;
      while (!ctl.signal.aborted) {
        setState('streaming');
        try {
          await streamLogs(pod.metadata.namespace, pod.metadata.name, container, last, ctl.signal, each);
          setState('ended');
          return;
        } catch (e) {
          if (ctl.signal.aborted) return;
          if (e instanceof ApiError) {
            setState(`error: ${e.message}`);
            return;
          }
          setState('reconnecting');
          await new Promise((ok) => setTimeout(ok, delay));
          delay = Math.min(delay * 2, 10000);
        }
      }
    })();
    return () => ctl.abort();
  }, [pod.metadata.uid, container]);
  useEffect(() => {
    if (stick && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, stick]);
  return (
    <section aria-label="Logs">
      <div class="filters">
        <ContainerPicker pod={pod} value={container} onChange={setContainer} />
        <label>
          <input type="checkbox" checked={stick} onChange={(e) => setStick(e.currentTarget.checked)} /> Follow
        </label>
        <span role="status" class="count">
          {lines.length} lines, {state}
        </span>
      </div>
      <pre class="logs" ref={box} tabindex="0" data-testid="logs">
        {lines.join('\n')}
      </pre>
    </section>
  );
}

// ANSI escape sequences a shell writes to a terminal; the page shows plain
// text.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\r/g;

export function Terminal({ pod }) {
  const [container, setContainer] = useState(pod.spec.containers[0].name);
  const [out, setOut] = useState('');
  const [state, setState] = useState('connecting');
  const [input, setInput] = useState('');
  const ws = useRef(null);
  const box = useRef(null);
  useEffect(() => {
    setOut('');
    setState('connecting');
    const s = execSocket(pod.metadata.namespace, pod.metadata.name, container, ['sh']);
    ws.current = s;
    const dec = new TextDecoder();
    s.onopen = () => setState('connected');
    s.onmessage = (m) => {
      const b = new Uint8Array(m.data);
      if (!b.length) return;
      const ch = b[0];
      const text = dec.decode(b.subarray(1), { stream: true });
      if (ch === 1 || ch === 2) setOut((o) => (o + text.replace(ANSI, '')).slice(-200000));
      if (ch === 3) {
        try {
          const st = JSON.parse(text);
          setState(st.status === 'Success' ? 'exited' : `exited: ${st.message}`);
        } catch {
          setState('exited');
        }
      }
    };
    s.onclose = (e) => setState((st) => (st === 'connecting' ? `refused (${e.code}): the shell could not start` : st.startsWith('exited') ? st : 'closed'));
    return () => s.close();
  }, [pod.metadata.uid, container]);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [out]);
  const send = (e) => {
    e.preventDefault();
    const s = ws.current;
    if (!s || s.readyState !== WebSocket.OPEN) return;
    const data = new TextEncoder().encode(`${input}\n`);
    const frame = new Uint8Array(data.length + 1);
    frame[0] = 0;
    frame.set(data, 1);
    s.send(frame);
    setInput('');
  };
  return (
    <section aria-label="Terminal">
      <div class="filters">
        <ContainerPicker pod={pod} value={container} onChange={setContainer} />
        <span role="status" class="count">
          sh in {container}: {state}
        </span>
      </div>
      <pre class="logs terminal" ref={box} data-testid="terminal">
        {out}
      </pre>
      <form onSubmit={send} class="filters">
        <label class="grow">
          Command <input value={input} onInput={(e) => setInput(e.currentTarget.value)} autocomplete="off" spellcheck={false} />
        </label>
        <button type="submit">Send</button>
      </form>
    </section>
  );
}
