package mesh

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffdev/skiff/internal/mesh/api/v1alpha1"
)

// sniffWait is how long the destination proxy waits for a client's first
// bytes to tell HTTP/1.x from other protocols. A server-first protocol
// (the server greets, as SMTP or MySQL do) is spliced after it, its
// greeting delayed by at most this much.
const sniffWait = 100 * time.Millisecond

// httpMethods are the request methods whose first bytes mark an HTTP/1.x
// connection.
var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "TRACE ", "CONNECT "}

// isHTTP1 reports whether b, a connection's first bytes, start an HTTP/1.x
// request line (HTTP/2's preface, "PRI * HTTP/2.0", does not).
func isHTTP1(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, []byte(m)) {
			return true
		}
	}
	return false
}

// firstRead is the result of a connection's first read.
type firstRead struct {
	b   []byte
	err error
}

// sniff reads c's first bytes, waiting at most sniffWait: what it read (nil
// when the wait ended first) and a reader that yields everything c sends,
// those bytes first.
func sniff(c io.Reader) ([]byte, io.Reader) {
	ch := make(chan firstRead, 1)
	go func() {
		b := make([]byte, 4096)
		n, err := c.Read(b)
		ch <- firstRead{b[:n], err}
	}()
	t := time.NewTimer(sniffWait)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.b, io.MultiReader(&onceReader{r: r}, c)
	case <-t.C:
		return nil, io.MultiReader(&pendingReader{ch: ch}, c)
	}
}

// onceReader yields a first read's bytes, then its error (or EOF).
type onceReader struct {
	r    firstRead
	done bool
}

func (o *onceReader) Read(b []byte) (int, error) {
	if len(o.r.b) > 0 {
		n := copy(b, o.r.b)
		o.r.b = o.r.b[n:]
		return n, nil
	}
	if o.r.err != nil {
		return 0, o.r.err
	}
	return 0, io.EOF
}

// pendingReader waits for a first read still under way.
type pendingReader struct {
	ch   chan firstRead
	once *onceReader
}

func (p *pendingReader) Read(b []byte) (int, error) {
	if p.once == nil {
		p.once = &onceReader{r: <-p.ch}
	}
	return p.once.Read(b)
}

// readerConn is a halfCloser whose reads come from r (a sniffed stream).
type readerConn struct {
	halfCloser
	r io.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// usesHTTPFields reports whether any of policies has a rule that names
// HTTP attributes (hosts, methods, paths, request headers), which only a
// request can match.
func usesHTTPFields(policies []*v1alpha1.AuthorizationPolicy) bool {
	for _, p := range policies {
		for _, r := range p.Spec.Rules {
			for _, to := range r.To {
				o := to.Operation
				if len(o.Hosts)+len(o.NotHosts)+len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths) > 0 {
					return true
				}
			}
			for _, w := range r.When {
				if strings.HasPrefix(w.Key, "request.") {
					return true
				}
			}
		}
	}
	return false
}

// serveHTTP1 proxies HTTP/1.x requests from client to the pod's connection
// up one at a time, deciding each with the pod's AuthorizationPolicies
// (403 when denied) and counting it in Istio's request metrics. It returns
// when either side closes, a request or response is malformed, or a
// response switches protocols (then the rest is spliced).
func (p *Proxy) serveHTTP1(ctx context.Context, f flow, client halfCloser, clientR io.Reader, up *net.TCPConn, pod *corev1.Pod, peer Identity, from netip.Addr, port uint16) {
	defer client.Close()
	defer up.Close()
	defer closeWhenDone(ctx, client, up)()
	f.protocol = "http"
	br := bufio.NewReader(clientR)
	ur := bufio.NewReader(up)
	bw := bufio.NewWriter(client)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		start := p.cfg.Clock.Now()
		if !p.admitRequest(ctx, pod, port, peer, from, req) {
			_, _ = io.Copy(io.Discard, req.Body)
			body := "RBAC: access denied"
			resp := &http.Response{StatusCode: http.StatusForbidden, ProtoMajor: 1, ProtoMinor: 1, Request: req,
				Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body)), Close: req.Close}
			err := resp.Write(bw)
			if err == nil {
				err = bw.Flush()
			}
			p.countRequest(f, http.StatusForbidden, start)
			if err != nil || req.Close {
				return
			}
			continue
		}
		if err := req.Write(up); err != nil {
			p.countRequest(f, http.StatusServiceUnavailable, start)
			return
		}
		resp, err := http.ReadResponse(ur, req)
		if err != nil {
			p.countRequest(f, http.StatusServiceUnavailable, start)
			return
		}
		err = resp.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		resp.Body.Close()
		p.countRequest(f, resp.StatusCode, start)
		if err != nil || resp.Close || req.Close {
			return
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// A WebSocket or another upgrade: bytes from here on.
			splice(&readerConn{halfCloser: client, r: br}, &readerConn{halfCloser: up, r: ur})
			return
		}
	}
}

// countRequest records one request in Istio's request metrics.
func (p *Proxy) countRequest(f flow, code int, start time.Time) {
	p.countRequestGRPC(f, code, "", start)
}

// countRequestGRPC is countRequest with gRPC's status ("" for plain HTTP).
func (p *Proxy) countRequestGRPC(f flow, code int, grpcStatus string, start time.Time) {
	v := append(f.values(), strconv.Itoa(code), grpcStatus)
	p.metrics.requests.WithLabelValues(v...).Inc()
	p.metrics.duration.WithLabelValues(v...).Observe(float64(p.cfg.Clock.Since(start).Microseconds()) / 1000)
}
