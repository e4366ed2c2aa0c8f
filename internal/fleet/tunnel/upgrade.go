package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/util/httpstream"
)

// Requests that upgrade their connection (exec, attach and port-forward,
// over WebSocket or SPDY) cannot cross HTTP/2, which has no Upgrade. The
// upstream sends them as a stream instead: the request with its Upgrade
// header renamed HeaderUpgrade, whose body carries the client's bytes
// after the switch; the agent makes the real HTTP/1.1 request to its API
// server, answers 200 with the API server's status in HeaderStatus and
// its headers, and then the response body carries the API server's bytes.
const (
	// HeaderUpgrade carries, across the tunnel, the Upgrade header of a
	// request that switches protocols.
	HeaderUpgrade = "X-Skiff-Tunnel-Upgrade"
	// HeaderStatus carries, across the tunnel, the status the downstream's
	// API server answered such a request with.
	HeaderStatus = "X-Skiff-Tunnel-Status"
)

// IsUpgrade reports whether r switches protocols.
func IsUpgrade(r *http.Request) bool { return httpstream.IsUpgradeRequest(r) }

// ProxyUpgrade carries the upgrade request r through the tunnel rt as out
// (r rewritten for the downstream: path, impersonation) and, once the
// downstream switched, relays bytes between r's connection (taken over)
// and the tunnel's stream until either side closes. A refusal before the
// switch is passed on as an ordinary response.
func ProxyUpgrade(w http.ResponseWriter, r *http.Request, rt http.RoundTripper, out *http.Request) error {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return errors.New("this connection cannot switch protocols (HTTP/2?)")
	}
	pr, pw := io.Pipe()
	out = out.Clone(r.Context())
	out.Body = pr
	out.ContentLength = -1
	out.Header.Set(HeaderUpgrade, r.Header.Get("Upgrade"))
	out.Header.Del("Upgrade")
	out.Header.Del("Connection")
	resp, err := rt.RoundTrip(out)
	if err != nil {
		pw.Close()
		return err
	}
	defer resp.Body.Close()
	status, _ := strconv.Atoi(resp.Header.Get(HeaderStatus))
	resp.Header.Del(HeaderStatus)
	if status != http.StatusSwitchingProtocols {
		pw.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(max(status, resp.StatusCode))
		_, _ = io.Copy(w, resp.Body)
		return nil
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		pw.Close()
		return err
	}
	defer conn.Close()
	resp.Header.Set("Connection", "Upgrade")
	if u := resp.Header.Get(HeaderUpgrade); u != "" {
		resp.Header.Set("Upgrade", u)
		resp.Header.Del(HeaderUpgrade)
	}
	if _, err := fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		pw.Close()
		return err
	}
	if err := resp.Header.Write(brw); err != nil {
		pw.Close()
		return err
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		pw.Close()
		return err
	}
	if err := brw.Flush(); err != nil {
		pw.Close()
		return err
	}
	// Bytes the client sent after its request, already read, go first.
	client := io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn)
	relay(func() error { _, err := io.Copy(pw, client); pw.CloseWithError(err); return err },
		func() error { _, err := io.Copy(conn, resp.Body); conn.Close(); return err })
	return nil
}

// ServeUpgrade answers, on the agent's side, a request ProxyUpgrade sent:
// it dials the API server (dial gives a connection that speaks TLS to it,
// authenticated), makes the request there as HTTP/1.1 with its Upgrade,
// sends back the answer, and after a switch relays bytes both ways.
// authorize sets the agent's credentials on the request.
func ServeUpgrade(w http.ResponseWriter, r *http.Request, dial func(context.Context) (net.Conn, error), authorize func(*http.Request)) {
	conn, err := dial(r.Context())
	if err != nil {
		w.Header().Set(HeaderStatus, strconv.Itoa(http.StatusBadGateway))
		http.Error(w, "reach the cluster's API server: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer conn.Close()
	out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.RequestURI(), nil)
	if err != nil {
		w.Header().Set(HeaderStatus, strconv.Itoa(http.StatusBadRequest))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out.Host = r.Host
	out.Header = r.Header.Clone()
	out.Header.Set("Upgrade", r.Header.Get(HeaderUpgrade))
	out.Header.Set("Connection", "Upgrade")
	out.Header.Del(HeaderUpgrade)
	authorize(out)
	if err := out.Write(conn); err != nil {
		w.Header().Set(HeaderStatus, strconv.Itoa(http.StatusBadGateway))
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		w.Header().Set(HeaderStatus, strconv.Itoa(http.StatusBadGateway))
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range resp.Header {
		if k == "Connection" || k == "Upgrade" {
			continue
		}
		w.Header()[k] = vs
	}
	if u := resp.Header.Get("Upgrade"); u != "" {
		w.Header().Set(HeaderUpgrade, u)
	}
	w.Header().Set(HeaderStatus, strconv.Itoa(resp.StatusCode))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	server := io.MultiReader(io.LimitReader(br, int64(br.Buffered())), conn)
	relay(func() error { _, err := io.Copy(conn, r.Body); closeWrite(conn); return err },
		func() error { _, err := io.Copy(flushWriter{w, rc}, server); conn.Close(); return err })
}

// relay runs both directions and returns when both are done. The client's
// direction half-closes the connection it writes to when the client is
// done (its answer may still come); the server's closes everything.
func relay(fs ...func() error) {
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() { _ = f() })
	}
	wg.Wait()
}

// closeWrite half-closes conn where it can (TCP, TLS), so the peer sees the
// end of what we send while its answer still comes.
func closeWrite(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	conn.Close()
}

// flushWriter flushes each write: a stream's bytes must not wait in a
// buffer.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}
