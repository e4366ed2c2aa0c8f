package mesh

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	corev1 "k8s.io/api/core/v1"
)

// h2Preface starts every HTTP/2 connection with prior knowledge (h2c, as
// gRPC speaks inside clusters).
var h2Preface = []byte("PRI * HTTP/2.0")

// isHTTP2 reports whether b, a connection's first bytes, start HTTP/2's
// connection preface.
func isHTTP2(b []byte) bool { return bytes.HasPrefix(b, h2Preface) }

// serveHTTP2 proxies the HTTP/2 streams of client to the pod's connection
// up (one HTTP/2 connection each way, streams in both directions at once,
// as gRPC's streaming calls need), deciding each request with the pod's
// AuthorizationPolicies and counting it (gRPC's status from its trailers
// in grpc_response_status).
func (p *Proxy) serveHTTP2(ctx context.Context, f flow, client halfCloser, clientR io.Reader, up *net.TCPConn, pod *corev1.Pod, peer Identity, from netip.Addr, port uint16) {
	defer client.Close()
	defer up.Close()
	defer closeWhenDone(ctx, client, up)()
	f.protocol = "http"
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(up)
	if err != nil {
		return
	}
	defer cc.Close()
	// Requests go on as they came (no X-Forwarded-* added or removed),
	// responses are flushed as they come, trailers follow.
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", pr.In.Host
			keepForwarded(pr)
		},
		Transport:     cc,
		FlushInterval: -1,
		BufferPool:    copyBuffers{},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := p.cfg.Clock.Now()
		grpc := isGRPC(r)
		fl := f
		if grpc {
			fl.protocol = "grpc"
		}
		if !p.admitRequest(ctx, pod, port, peer, from, r) {
			if grpc {
				// gRPC's PERMISSION_DENIED, as Istio answers.
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Grpc-Status", "7")
				w.Header().Set("Grpc-Message", "RBAC: access denied")
				w.WriteHeader(http.StatusOK)
				p.countRequestGRPC(fl, http.StatusOK, "7", start)
				return
			}
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
			p.countRequestGRPC(fl, http.StatusForbidden, "", start)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(rec, r)
		status := ""
		if grpc {
			status = grpcStatusOf(w.Header())
		}
		p.countRequestGRPC(fl, rec.code, status, start)
	})
	srv := &http2.Server{IdleTimeout: 5 * time.Minute}
	srv.ServeConn(&streamNetConn{halfCloser: client, r: clientR}, &http2.ServeConnOpts{Context: ctx, Handler: handler})
}

// keepForwarded puts back on pr's outgoing request the Forwarded and
// X-Forwarded-* headers the client sent, which a Rewrite ReverseProxy
// removes: the mesh passes requests on as their clients sent them.
func keepForwarded(pr *httputil.ProxyRequest) {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
}

// copyBuffers are the body-copy buffers of the proxies' ReverseProxies,
// reused rather than allocated per request.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte  { return copyBufferPool.Get().(*[32 << 10]byte)[:] }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put((*[32 << 10]byte)(b)) }

// isGRPC tells a gRPC call by its content type.
func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// grpcStatusOf is the gRPC status of an answer written with header h:
// its Grpc-Status trailer (announced or, as gRPC servers send it, not),
// or the header of a trailers-only answer.
func grpcStatusOf(h http.Header) string {
	if s := h.Get(http.TrailerPrefix + "Grpc-Status"); s != "" {
		return s
	}
	return h.Get("Grpc-Status")
}

// streamNetConn is a halfCloser, read through r, as the net.Conn that
// http2.Server serves.
type streamNetConn struct {
	halfCloser
	r io.Reader
}

func (c *streamNetConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *streamNetConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *streamNetConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *streamNetConn) SetDeadline(time.Time) error      { return nil }
func (c *streamNetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamNetConn) SetWriteDeadline(time.Time) error { return nil }
